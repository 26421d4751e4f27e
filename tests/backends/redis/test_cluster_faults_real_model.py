"""Faults on real processes: Redis restarted empty, workers and API nodes killed mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from app.bench.runner import word_error_rate
from tests.backends.conftest import Cluster
from tests.backends.redis.cluster_rig import send, wait_for_workers, wait_running
from tests.backends.redis.surfaces import CLIENT_BOUND_S, Outcome, send_any
from tests.conftest import REPO_ROOT, reference_text, shared_clip
from tests.server_process import server_wait_final, wait_until

pytestmark = pytest.mark.real_model

# base beside tiny.en: /detect-language and speaker labels need a multilingual model.
FAST_TAKEOVER = {"JOB_CLAIM_TIMEOUT_S": "5", "MAX_MODEL": "base"}
LONG_CLIP = "en_longform_tedlium_120s.flac"


def test_after_redis_restarts_empty_the_same_processes_serve_again(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Redis killed and started again empty: the running job's poller learns it was lost, the
    node is ready again within seconds, and an upload after it finishes within 60 s. The node
    lists the models its worker offers and refuses live sessions (API_NODE_LIVE=refuse)."""
    worker = cluster.worker(**FAST_TAKEOVER)
    wait_for_workers(cluster.redis.client, 1)
    node = cluster.api_node(**FAST_TAKEOVER)
    offered = [model["id"] for model in httpx.get(f"{node.url}/v1/models").json()["data"]]
    assert "tiny.en" in offered and "gpt-4o-transcribe-diarize" in offered  # the fleet's
    assert httpx.get(f"{node.url}/api/v1/decoder_status").json()["live_transcription"] == (
        "refused"
    )
    in_flight = send(node.url, LONG_CLIP)
    wait_running(cluster.redis.client, in_flight)
    cluster.redis.restart()
    restarted = time.monotonic()
    wait_until(lambda: httpx.get(f"{node.url}/readyz").status_code == 200, timeout_s=20)
    answer = httpx.get(f"{node.url}/api/v1/status", params={"task_id": in_flight})
    assert answer.status_code == 404  # gone with the Redis that held it: never pending
    after = send(node.url, "en_jfk.flac")
    body = server_wait_final(node.url, after, timeout_s=60)
    assert body["status"] == "finished", body
    assert time.monotonic() - restarted < 60
    assert worker.process.poll() is None and node.process.poll() is None
    assert "redis_group_recreated" in worker.output
    # The command-line client and the web page through the same node, after the restart.
    cli = subprocess.run(
        [sys.executable, "-m", "app", "transcribe", str(shared_clip("en_jfk.flac")),
         "--server", node.url, "-o", str(tmp_path / "jfk.txt")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    written = (tmp_path / "jfk.txt").read_text()
    assert word_error_rate(reference_text("en_jfk.flac"), written) <= 0.25
    page = httpx.get(f"{node.url}/")
    assert page.status_code == 200 and "<html" in page.text.lower()


def test_the_fleet_survives_killed_processes_and_a_redis_restart(
    cluster: Cluster, tmp_path: Path
) -> None:
    """~40 jobs over every surface through two nodes and two workers while a worker and a node
    are killed (-9) and Redis restarts: every job ends with a reason within its bound, no key
    of an ended task is left without an end, no audio or transcript in any log or file."""
    cluster.worker(**FAST_TAKEOVER)
    cluster.worker(**FAST_TAKEOVER)
    wait_for_workers(cluster.redis.client, 2)
    nodes = [cluster.api_node(**FAST_TAKEOVER), cluster.api_node(**FAST_TAKEOVER)]
    jobs, faults = 40, []
    futures: list[Future[Outcome]] = []
    began = time.monotonic()
    long_job = send(nodes[0].url, LONG_CLIP)  # busy long enough to be killed mid-job
    with ThreadPoolExecutor(max_workers=10) as clients:
        for index in range(jobs):
            alive = nodes if len(faults) < 2 else nodes[:1]
            futures.append(clients.submit(send_any, alive[index % len(alive)].url, index))
            # A burst before each of the last two faults: jobs are waiting and running then.
            time.sleep(0.05 if index in range(14, 20) or index in range(24, 30) else 0.5)
            if index == 8:
                _kill_the_worker_running(cluster, long_job)
                faults.append("kill -9 worker")
                cluster.worker(**FAST_TAKEOVER)  # its supervisor starts it again
            if index == 20:
                os.kill(nodes[1].process.pid, signal.SIGKILL)
                faults.append("kill -9 api node")
            if index == 30:  # after the killed worker's job was taken over
                cluster.redis.restart()
                faults.append("redis restart")
        outcomes = [future.result() for future in futures]
    long_end = httpx.get(f"{nodes[0].url}/api/v1/status", params={"task_id": long_job})
    assert long_end.status_code == 404 or long_end.json()["status"] != "processing", long_end.text
    elapsed = time.monotonic() - began
    ends = {end: sum(o.end == end for o in outcomes) for end in {o.end for o in outcomes}}
    longest = max(outcome.waited_s for outcome in outcomes)
    print(f"fault test: {jobs} jobs, faults {faults}, ends {ends}, "
          f"longest client wait {longest:.1f} s, run {elapsed:.0f} s")  # fmt: skip
    assert longest <= CLIENT_BOUND_S
    for outcome in outcomes:
        assert outcome.end in ("finished", "failed", "refused", "lost", "unreachable"), outcome
        if outcome.end in ("failed", "refused"):
            assert outcome.reason.strip(), outcome  # always with a reason
    assert ends.get("finished", 0) >= jobs // 2, ends
    # Only clients of the killed node (odd indices before the kill) see its connection drop.
    assert ends.get("unreachable", 0) <= 10, ends
    assert any("job_taken_over" in worker.output for worker in cluster.workers)
    # Every key left has an end: results expire by TTL, nothing waits, no upload remains.
    client = cluster.redis.client
    wait_until(lambda: cluster.redis.audio_keys() == [], timeout_s=60)
    wait_until(lambda: client.hlen("whisper:running") == 0, timeout_s=60)
    # The owner deletes its tasks; then only records of synchronous jobs whose node was killed
    # before it could erase them remain, each expiring with its TTL.
    for task_id in [long_job, *(o.task_id for o in outcomes if o.task_id)]:
        assert httpx.delete(f"{nodes[0].url}/api/v1/tasks/{task_id}").status_code in (200, 404)
        assert not any(task_id.encode() in key for key in client.scan_iter())
    left = list(client.scan_iter(match="whisper:job:*"))
    assert len(left) <= ends.get("unreachable", 0), left
    for key in left:
        assert client.ttl(key) > 0, key
    assert client.zcard("whisper:waiting") == client.zcard("whisper:deadlines") == 0
    assert client.hlen("whisper:entries") == client.hlen("whisper:attempts") == 0
    assert client.xlen("whisper:jobs") == 0
    print(f"fault test: keys left {client.dbsize()}, of which {len(left)} records with their TTL")
    _no_content_left(cluster, tmp_path)


def _kill_the_worker_running(cluster: Cluster, task_id: str) -> None:
    """SIGKILL the worker that runs `task_id` now."""
    busy = wait_running(cluster.redis.client, task_id)
    victim = next(worker for worker in cluster.workers if worker.name == busy)
    os.kill(victim.process.pid, signal.SIGKILL)


def _no_content_left(cluster: Cluster, tmp_path: Path) -> None:
    """No transcript words in any log; no audio file anywhere under the test's directory."""
    said = reference_text("en_jfk.flac").lower().split()[:6]
    outputs = [worker.output for worker in cluster.workers] + [n.output for n in cluster.nodes]
    for output in outputs:
        assert " ".join(said) not in output.lower()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            head = path.read_bytes()[:4]
            assert head not in (b"fLaC", b"RIFF", b"OggS"), path
