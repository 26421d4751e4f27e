"""deploy/kubernetes/: every variant renders, validates offline and keeps the service's promises.

Part of `make deploy-check`: rendered with `kubectl kustomize`, each object checked against
the Kubernetes API schemas (kubernetes-validate's bundled copy) or KEDA's vendored CRD schema.
"""

from __future__ import annotations

import copy
import os
import re
import secrets
import signal
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import redis as redis_client
from kubernetes_validate import utils as kubernetes_schemas

from app.backends.redis.keys import GROUP, Keys
from app.config import load_settings
from tests.deploy import setting_variables
from tests.deploy.kubernetes import (
    VARIANTS,
    Manifest,
    container_environment,
    named,
    object_list,
    pod_specs,
    render,
    validate,
)
from tests.server_process import free_port, wait_until

# The rendered objects of each variant (the closing note lists the same).
COMMON_OBJECTS = [
    "ConfigMap/whisper-api-alert-rules",
    "ConfigMap/whisper-api-cluster",
    "ConfigMap/whisper-api-dashboard",
    "Deployment/whisper-api",
    "Deployment/whisper-api-worker",
    "HorizontalPodAutoscaler/whisper-api",
    "Ingress/whisper-api",
    "Namespace/whisper-api",
    "NetworkPolicy/whisper-api",
    "NetworkPolicy/whisper-api-egress",
    "NetworkPolicy/whisper-api-worker",
    "PodDisruptionBudget/whisper-api",
    "ScaledObject/whisper-api-worker",
    "Service/whisper-api",
    "TriggerAuthentication/whisper-api-redis",
]
IN_CLUSTER_REDIS = [
    "Deployment/whisper-api-redis",
    "NetworkPolicy/whisper-api-redis",
    "Service/whisper-api-redis",
]
EXPECTED_OBJECTS = {
    "cpu": sorted(COMMON_OBJECTS + IN_CLUSTER_REDIS),
    "gpu": sorted(COMMON_OBJECTS + IN_CLUSTER_REDIS),
    "gpu-scale-to-zero": sorted(COMMON_OBJECTS + IN_CLUSTER_REDIS),
    "external-redis": sorted(COMMON_OBJECTS),
    "sentinel": sorted(COMMON_OBJECTS),
}
WHISPER_DEPLOYMENTS = ("whisper-api", "whisper-api-worker")
LOG_DIR = "/var/lib/whisper-api/logs"
SECRETS_DIR = "/run/secrets/whisper-api"

variants = pytest.mark.parametrize("variant", list(VARIANTS))


@variants
def test_variant_renders_the_expected_objects(variant: str) -> None:
    """`kubectl kustomize` renders each overlay into exactly its list of objects."""
    assert object_list(render(variant)) == EXPECTED_OBJECTS[variant]
    namespaced = [item for item in render(variant) if item["kind"] != "Namespace"]
    assert {item["metadata"].get("namespace") for item in namespaced} == {"whisper-api"}


@variants
def test_every_object_is_valid_against_its_schema(variant: str) -> None:
    """Each object passes its Kubernetes (or KEDA) schema strictly, offline."""
    for item in render(variant):
        validate(item)


def test_validation_rejects_a_misspelt_field() -> None:
    """The offline validation fails on an unknown field, built-in kind and KEDA's alike."""
    objects = render("gpu")
    deployment = copy.deepcopy(named(objects, "Deployment", "whisper-api"))
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 45
    with pytest.raises(kubernetes_schemas.ValidationError):
        validate(deployment)
    scaled = copy.deepcopy(named(objects, "ScaledObject", "whisper-api-worker"))
    scaled["spec"]["minReplicas"] = 0
    with pytest.raises(jsonschema.ValidationError):
        validate(scaled)


@variants
def test_whisper_containers_set_only_known_settings(variant: str) -> None:
    """Every variable given to an API node or worker is a setting that loads as Settings."""
    objects = render(variant)
    known = setting_variables()
    for deployment in WHISPER_DEPLOYMENTS:
        environment = container_environment(objects, deployment)
        unknown = sorted(set(environment) - known)
        assert not unknown, (deployment, unknown)
        files = {"API_KEYS_FILE", "REDIS_PASSWORD_FILE"}
        settings = load_settings({k: v for k, v in environment.items() if k not in files})
        assert settings.queue_backend == "redis"
        assert settings.log_dir == LOG_DIR
        assert settings.allow_download is False


@variants
def test_pods_are_non_root_read_only_and_write_only_logs(variant: str) -> None:
    """Non-root, no privilege, read-only root; the only writable volume is LOG_DIR."""
    for name, spec in pod_specs(render(variant)).items():
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["enableServiceLinks"] is False, name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] > 0, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        writable = {
            mount["mountPath"]
            for container in spec["containers"]
            for mount in container["volumeMounts"]
            if "secret" not in volumes[mount["name"]]
        }
        assert writable <= {LOG_DIR}, (name, writable)


@variants
def test_secrets_are_files_never_environment(variant: str) -> None:
    """API keys and the Redis password are mounted files; no variable holds a secret."""
    objects = render(variant)
    for name, spec in pod_specs(objects).items():
        for container in spec["containers"]:
            for variable in container.get("env", []):
                assert "valueFrom" not in variable, (name, variable["name"])
            assert all("secretRef" not in source for source in container.get("envFrom", []))
    api = container_environment(objects, "whisper-api")
    worker = container_environment(objects, "whisper-api-worker")
    for name, environment in (("whisper-api", api), ("whisper-api-worker", worker)):
        spec = pod_specs(objects)[name]
        secret = next(volume for volume in spec["volumes"] if "secret" in volume)
        mount = next(
            m for m in spec["containers"][0]["volumeMounts"] if m["name"] == secret["name"]
        )
        files = {f"{mount['mountPath']}/{item['path']}" for item in secret["secret"]["items"]}
        given = {value for key, value in environment.items() if key.endswith("_FILE")}
        assert given == files, (name, given, files)
    assert api["API_KEYS_FILE"] == f"{SECRETS_DIR}/api-keys"
    assert api["REDIS_PASSWORD_FILE"] == worker["REDIS_PASSWORD_FILE"]
    assert "API_KEYS_FILE" not in worker
    worker_secret = next(
        v for v in pod_specs(objects)["whisper-api-worker"]["volumes"] if "secret" in v
    )
    assert [item["key"] for item in worker_secret["secret"]["items"]] == ["redis-password"]


@variants
def test_termination_grace_covers_shutdown_grace(variant: str) -> None:
    """Pods get SHUTDOWN_GRACE_S and 10 s more before SIGKILL, so a running job may finish."""
    objects = render(variant)
    for name in WHISPER_DEPLOYMENTS:
        grace_s = float(container_environment(objects, name)["SHUTDOWN_GRACE_S"])
        assert pod_specs(objects)[name]["terminationGracePeriodSeconds"] >= grace_s + 10


@variants
def test_api_nodes_probe_health_and_node_readiness(variant: str) -> None:
    """Liveness on /healthz, readiness on /readyz (node scope), scraped, PDB and HPA set."""
    objects = render(variant)
    api = pod_specs(objects)["whisper-api"]["containers"][0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz?scope=node"
    assert container_environment(objects, "whisper-api")["USE_GPU_IF_AVAILABLE"] == "0"
    assert "nvidia.com/gpu" not in api["resources"].get("limits", {})
    assert named(objects, "PodDisruptionBudget", "whisper-api")["spec"]["minAvailable"] >= 1
    hpa = named(objects, "HorizontalPodAutoscaler", "whisper-api")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "whisper-api"
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


@variants
def test_ingress_lets_uploads_stream_within_the_service_limits(variant: str) -> None:
    """The ingress takes MAX_UPLOAD_MB bodies unbuffered, for UPLOAD_TIMEOUT_S and long answers."""
    objects = render(variant)
    environment = container_environment(objects, "whisper-api")
    annotations = named(objects, "Ingress", "whisper-api")["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    body = re.fullmatch(r"(\d+)m", annotations[prefix + "proxy-body-size"])
    assert body and int(body.group(1)) > int(environment["MAX_UPLOAD_MB"])
    assert annotations[prefix + "proxy-request-buffering"] == "off"
    assert annotations[prefix + "proxy-buffering"] == "off"
    assert int(annotations[prefix + "proxy-send-timeout"]) >= float(environment["UPLOAD_TIMEOUT_S"])
    assert int(annotations[prefix + "proxy-read-timeout"]) >= 3600
    assert load_settings({"TRUSTED_PROXIES": environment["TRUSTED_PROXIES"]}).trusted_proxies


@pytest.mark.parametrize("variant", ["cpu", "gpu", "gpu-scale-to-zero"])
def test_in_cluster_redis_is_ram_only_and_reached_only_by_the_service(variant: str) -> None:
    """Redis saves nothing, has no volume but its password, and admits only labelled clients."""
    objects = render(variant)
    redis = pod_specs(objects)["whisper-api-redis"]
    command = " ".join(redis["containers"][0]["command"])
    assert '--save ""' in command and "--appendonly no" in command
    assert all("secret" in volume for volume in redis["volumes"])
    policy = named(objects, "NetworkPolicy", "whisper-api-redis")["spec"]
    sources = policy["ingress"][0]["from"]
    assert sources[0] == {"podSelector": {"matchLabels": {"whisper-api/redis-client": "true"}}}
    assert sources[1]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "keda"}
    clients = {
        name
        for name, item in ((o["metadata"]["name"], o) for o in objects if o["kind"] == "Deployment")
        if item["spec"]["template"]["metadata"]["labels"].get("whisper-api/redis-client")
    }
    assert clients == set(WHISPER_DEPLOYMENTS)


def _triggers(variant: str) -> list[dict[str, Any]]:
    scaled = named(render(variant), "ScaledObject", "whisper-api-worker")["spec"]
    assert scaled["scaleTargetRef"]["name"] == "whisper-api-worker"
    triggers: list[dict[str, Any]] = scaled["triggers"]
    return triggers


@variants
def test_workers_scale_on_the_consumer_groups_waiting_and_pending_work(variant: str) -> None:
    """KEDA reads the service's own stream and group: lag (waiting) and pending (running)."""
    triggers = _triggers(variant)
    streams = {trigger["metadata"]["stream"] for trigger in triggers}
    groups = {trigger["metadata"]["consumerGroup"] for trigger in triggers}
    assert streams == {Keys().stream} and groups == {GROUP}
    measures = [
        set(trigger["metadata"]) & {"lagCount", "pendingEntriesCount"} for trigger in triggers
    ]
    assert measures == [{"lagCount"}, {"pendingEntriesCount"}]
    kind = "redis-sentinel-streams" if variant == "sentinel" else "redis-streams"
    assert {trigger["type"] for trigger in triggers} == {kind}
    assert all(t["authenticationRef"]["name"] == "whisper-api-redis" for t in triggers)


def test_scale_to_zero_only_where_asked() -> None:
    """Only gpu-scale-to-zero lets the workers (and GPUs) go to zero."""
    for variant in VARIANTS:
        scaled = named(render(variant), "ScaledObject", "whisper-api-worker")["spec"]
        assert scaled["minReplicaCount"] == (0 if variant == "gpu-scale-to-zero" else 1)


@variants
def test_gpu_workers_request_gpus_on_gpu_nodes(variant: str) -> None:
    """GPU variants: the CUDA image, one nvidia.com/gpu, toleration and node selector; CPU: none."""
    objects = render(variant)
    worker = pod_specs(objects)["whisper-api-worker"]
    container = worker["containers"][0]
    environment = container_environment(objects, "whisper-api-worker")
    if variant == "cpu":
        assert "nvidia.com/gpu" not in container["resources"]["limits"]
        assert environment["USE_GPU_IF_AVAILABLE"] == "0"
        assert "tolerations" not in worker
        return
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["image"].endswith(":cuda")
    assert environment["USE_GPU_IF_AVAILABLE"] == "1"
    assert worker["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert worker["nodeSelector"]


def test_external_and_sentinel_redis_reach_their_redis() -> None:
    """External Redis: its URL (TLS) everywhere; Sentinel: the sentinels and master name."""
    external = container_environment(render("external-redis"), "whisper-api-worker")
    assert external["REDIS_URL"].startswith("rediss://")
    assert all(t["metadata"]["enableTLS"] == "true" for t in _triggers("external-redis"))
    sentinel = container_environment(render("sentinel"), "whisper-api")
    sentinels = sentinel["REDIS_SENTINELS"].split(",")
    assert all(re.fullmatch(r"[\w.-]+:\d+", address) for address in sentinels)
    for trigger in _triggers("sentinel"):
        assert trigger["metadata"]["addresses"].split(",") == sentinels
        assert trigger["metadata"]["sentinelMaster"] == sentinel["REDIS_SENTINEL_MASTER"]


def test_redis_command_runs_ram_only_with_the_password_from_its_file(tmp_path: Path) -> None:
    """The Redis pod's own command, run with Debian's redis-server: password required, no saving."""
    redis = pod_specs(render("cpu"))["whisper-api-redis"]["containers"][0]
    mount = next(m for m in redis["volumeMounts"] if m["name"] == "secrets")["mountPath"]
    password = secrets.token_hex(24)  # as the README says: `openssl rand -hex 24`
    (tmp_path / "redis-password").write_text(password + "\n")
    port = free_port()
    shell, flag, script = redis["command"]
    script = script.replace(mount, str(tmp_path)) + f" --port {port} --bind 127.0.0.1"
    # Its own process group: the shell and the redis-server it pipes into stop together.
    process = subprocess.Popen([shell, flag, script], cwd=tmp_path, start_new_session=True)
    try:
        client = redis_client.Redis(port=port, password=password, socket_timeout=5)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis_client.ConnectionError:
                return False

        wait_until(answers, timeout_s=10, message="the Redis command did not start")
        with pytest.raises(redis_client.AuthenticationError):
            redis_client.Redis(port=port, socket_timeout=5).get("x")
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


def _pod_labels(objects: tuple[Manifest, ...]) -> dict[str, dict[str, str]]:
    return {
        item["metadata"]["name"]: item["spec"]["template"]["metadata"]["labels"]
        for item in objects
        if item["kind"] == "Deployment"
    }


@variants
def test_network_policies_select_the_pods_they_mean(variant: str) -> None:
    """Egress reaches Redis (in-cluster) and kube-dns only; nobody reaches a worker."""
    objects = render(variant)
    pods = _pod_labels(objects)
    egress = named(objects, "NetworkPolicy", "whisper-api-egress")["spec"]
    covered = {name for name, labels in pods.items() if _selects(egress["podSelector"], labels)}
    assert covered == set(WHISPER_DEPLOYMENTS)
    dns = egress["egress"][-1]["to"][0]
    assert dns == {"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    if "whisper-api-redis" in pods:
        to_redis = egress["egress"][0]["to"][0]["podSelector"]
        reached = {name for name, labels in pods.items() if _selects(to_redis, labels)}
        assert reached == {"whisper-api-redis"}
        redis_policy = named(objects, "NetworkPolicy", "whisper-api-redis")["spec"]
        assert _selects(redis_policy["podSelector"], pods["whisper-api-redis"])
    workers = named(objects, "NetworkPolicy", "whisper-api-worker")["spec"]
    assert [n for n, labels in pods.items() if _selects(workers["podSelector"], labels)] == [
        "whisper-api-worker"
    ]
    assert workers["ingress"] == []
    api = named(objects, "NetworkPolicy", "whisper-api")["spec"]
    assert [n for n, labels in pods.items() if _selects(api["podSelector"], labels)] == [
        "whisper-api"
    ]
