"""The Grafana dashboard and the Prometheus alert rules under deploy/kubernetes/monitoring/.

Part of `make deploy-check`: promtool (Debian's prometheus package) checks the rules and runs
their unit tests, and every metric a panel or a rule queries must be exported by a real
server: an API node and a worker of a real cluster after a job, and a standalone server.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.backends.redis.cluster_rig import (
    CLUSTER_ENV,
    redis_server,
    send,
    start_api_node,
    start_worker,
    wait_for_workers,
)
from tests.deploy import REPO_ROOT
from tests.deploy.kubernetes import MONITORING, VARIANTS, named, render
from tests.server_process import served, server_wait_final

DASHBOARD = MONITORING / "whisper-api-dashboard.json"
RULES = MONITORING / "whisper-api.rules.yaml"
RULE_TESTS = MONITORING / "whisper-api.rules.test.yaml"
METRIC_NAME = re.compile(r"\bwhisper_api_[a-z0-9_]+\b")
# What the issue asks the dashboard to show, one panel each.
PANELS = {
    "Queue depth",
    "Queue wait",
    "Jobs per second by surface",
    "Audio seconds per second by surface",
    "Processing latency",
    "Real-time factor",
    "Refusals by reason",
    "Workers alive by device",
    "Model loads and unloads",
    "Live sessions",
}
ALERTS = {
    "WhisperApiNoWorkerWhileJobsWait",
    "WhisperApiQueueFull",
    "WhisperApiRedisUnreachable",
    "WhisperApiJobsFailing",
    "WhisperApiSlowQueue",
}


def promtool(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run Debian's promtool (`make test-tools` installs the prometheus package)."""
    found = shutil.which("promtool")
    assert found, "promtool is missing: run `make test-tools` (Debian package prometheus)"
    return subprocess.run(
        [found, *arguments], capture_output=True, text=True, check=False, cwd=MONITORING
    )


def dashboard() -> dict[str, Any]:
    """The dashboard as Grafana imports it."""
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def rules() -> list[dict[str, Any]]:
    """Every alert rule of the rules file."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def queries() -> dict[str, str]:
    """Each PromQL expression of the dashboard and the rules, by where it is."""
    found = {
        f"panel {panel['title']!r} {target['refId']}": target["expr"]
        for panel in dashboard()["panels"]
        for target in panel["targets"]
    }
    found.update({f"alert {rule['alert']}": rule["expr"] for rule in rules()})
    return found


def test_promtool_checks_the_rules() -> None:
    """`promtool check rules` accepts the rules file."""
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    """Each alert fires when it should and stays quiet when it should (`promtool test rules`)."""
    result = promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert tested == ALERTS == {rule["alert"] for rule in rules()}


def test_dashboard_has_the_panels_and_a_datasource_variable() -> None:
    """The panels the issue lists, each querying the dashboard's Prometheus variable."""
    board = dashboard()
    assert {panel["title"] for panel in board["panels"]} >= PANELS
    assert board["templating"]["list"][0]["type"] == "datasource"
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_configmaps_carry_the_files_unchanged(variant: str) -> None:
    """Each variant provisions the very dashboard and rules files (Grafana's sidecar label)."""
    objects = render(variant)
    board = named(objects, "ConfigMap", "whisper-api-dashboard")
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert board["data"][DASHBOARD.name] == DASHBOARD.read_text()
    alert_rules = named(objects, "ConfigMap", "whisper-api-alert-rules")
    assert alert_rules["data"][RULES.name] == RULES.read_text()


def test_every_alert_has_a_runbook_line() -> None:
    """README's Kubernetes section says what to do for each alert."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("### On Kubernetes", 1)[1].split("\n## ", 1)[0]
    for alert in ALERTS:
        assert re.search(rf"^- \*\*`{alert}`\*\*: .{{40,}}", section, re.MULTILINE), alert


def test_every_query_names_a_whisper_api_metric() -> None:
    """Each expression reads at least one whisper-api metric (so the next test covers it)."""
    for where, expression in queries().items():
        assert METRIC_NAME.search(expression), where


def _sample_names(url: str) -> set[str]:
    text = httpx.get(url + "/metrics", timeout=10).text
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    """Sample names of a cluster API node after a job and a refusal, and of a standalone."""
    tmp_path: Path = tmp_path_factory.mktemp("metrics")
    names: set[str] = set()
    with redis_server(tmp_path) as redis:
        worker = start_worker(tmp_path, redis.url)
        try:
            wait_for_workers(redis.client, 1)
            node = start_api_node(tmp_path, redis.url)
            try:
                server_wait_final(node.url, send(node.url, "en_jfk.flac"), timeout_s=180)
                refused = httpx.post(
                    node.url + "/api/v1/transcribe",
                    files={"file": ("noise.wav", b"not audio at all")},
                    timeout=30,
                )
                assert refused.status_code >= 400
                names |= _sample_names(node.url)
            finally:
                node.stop()
        finally:
            worker.stop()
    with served(tmp_path, MAX_MODEL=CLUSTER_ENV["MAX_MODEL"], CPU_FALLBACK_MODEL="tiny.en") as one:
        names |= _sample_names(one.url)
    yield names


@pytest.mark.real_model
def test_every_queried_metric_is_exported_by_a_real_server(exported: set[str]) -> None:
    """Each metric a panel or an alert rule queries has samples on a running server."""
    missing = {
        where: sorted(set(METRIC_NAME.findall(expression)) - exported)
        for where, expression in queries().items()
        if set(METRIC_NAME.findall(expression)) - exported
    }
    assert not missing, missing
