"""Two API nodes and two workers on a real redis-server with the bundled tiny.en model."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from app.bench.runner import word_error_rate
from tests.backends.conftest import Cluster
from tests.backends.redis.cluster_rig import send, wait_for_workers, wait_running
from tests.conftest import reference_text, shared_clip
from tests.server_process import (
    server_decoder_status,
    server_upload,
    server_wait_final,
    wait_until,
)

pytestmark = pytest.mark.real_model

CLIPS = [
    "en_jfk.flac",
    "en_ljspeech_LJ001-0001.wav",
    "en_ljspeech_LJ001-0002.wav",
    "en_ljspeech_LJ001-0003.wav",
]


def test_jobs_through_two_nodes_finish_readable_from_the_other(cluster: Cluster) -> None:
    """12 jobs from several clients via both API nodes finish right, read from the other node."""
    cluster.worker()
    cluster.worker()
    wait_for_workers(cluster.redis.client, 2)
    first, second = cluster.api_node(), cluster.api_node()
    nodes = [first.url, second.url]
    status = server_decoder_status(second.url)
    assert [worker["device"] for worker in status["workers"]] == ["cpu", "cpu"]
    assert status["worker_running"] and status["loaded_models"] == []  # no model on a node
    metrics = httpx.get(f"{first.url}/metrics").text
    assert 'whisper_api_workers_alive{device="cpu"} 2.0' in metrics
    sent = [(nodes[i % 2], CLIPS[i % len(CLIPS)]) for i in range(12)]
    with ThreadPoolExecutor(max_workers=4) as clients:
        task_ids = list(clients.map(lambda job: send(*job), sent))
    for (node, clip), task_id in zip(sent, task_ids, strict=True):
        other = nodes[1 - nodes.index(node)]
        body = server_wait_final(other, task_id, timeout_s=240)
        assert body["status"] == "finished", body
        assert word_error_rate(reference_text(clip), body["transcript"]) <= 0.25
    wait_until(lambda: cluster.redis.audio_keys() == [])
    assert cluster.redis.client.zcard("whisper:waiting") == 0
    # Both workers took jobs (FIFO to whichever is free).
    assert all("job_finished" in worker.output for worker in cluster.workers)


def test_results_expire_by_redis_ttl_refreshed_on_the_owners_read(cluster: Cluster) -> None:
    """A finished record carries DELETE_RESULTS_AFTER_M as its TTL, renewed when it is read."""
    ttl_env = {"DELETE_RESULTS_AFTER_M": "0.5"}  # 30 s
    cluster.worker(**ttl_env)
    wait_for_workers(cluster.redis.client, 1)
    node = cluster.api_node(**ttl_env)
    task_id = send(node.url, "en_jfk.flac")
    assert server_wait_final(node.url, task_id)["status"] == "finished"
    key = f"whisper:job:{task_id}"
    assert 0 < cluster.redis.client.ttl(key) <= 30
    cluster.redis.client.expire(key, 5)
    assert httpx.get(f"{node.url}/api/v1/tasks/{task_id}").status_code == 200
    assert cluster.redis.client.ttl(key) > 5  # the owner's read renewed it
    cluster.redis.client.expire(key, 1)
    wait_until(lambda: cluster.redis.client.exists(key) == 0)
    assert httpx.get(f"{node.url}/api/v1/tasks/{task_id}").status_code == 404
    assert cluster.redis.audio_keys() == []


def test_a_worker_killed_mid_job_has_its_job_taken_over(cluster: Cluster) -> None:
    """SIGKILL on the worker running a job: another takes it over after JOB_CLAIM_TIMEOUT_S."""
    env = {"JOB_CLAIM_TIMEOUT_S": "3"}
    cluster.worker(**env)
    cluster.worker(**env)
    wait_for_workers(cluster.redis.client, 2)
    node = cluster.api_node(**env)
    clip = "en_ls-test-clean_1089-134686-0000.flac"
    task_id = send(node.url, clip)
    owner = wait_running(cluster.redis.client, task_id, timeout_s=30)
    victim = next(w for w in cluster.workers if w.name == owner)
    os.kill(victim.process.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    body = server_wait_final(node.url, task_id, timeout_s=120)
    assert body["status"] == "finished", body
    assert word_error_rate(reference_text(clip), body["transcript"]) <= 0.25
    assert time.monotonic() - killed_at >= 2.5  # not before the claim timeout
    survivor = next(w for w in cluster.workers if w is not victim)
    assert "job_taken_over" in survivor.output
    wait_until(lambda: cluster.redis.audio_keys() == [])


def test_redis_paused_gives_503_then_recovers_without_losing_jobs(cluster: Cluster) -> None:
    """CLIENT PAUSE: uploads get 503 + Retry-After within seconds; afterwards all is served."""
    cluster.worker()
    wait_for_workers(cluster.redis.client, 1)
    node = cluster.api_node()
    accepted = send(node.url, "en_jfk.flac")
    cluster.redis.client.execute_command("CLIENT", "PAUSE", 8000, "ALL")
    began = time.monotonic()
    refused = server_upload(
        node.url, "/api/v1/transcribe?language=en", shared_clip("en_jfk.flac"), timeout_s=30
    )
    answered_s = time.monotonic() - began
    assert refused.status_code == 503, refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    assert answered_s < 6
    ready = httpx.get(f"{node.url}/readyz", timeout=30)
    assert ready.status_code == 503 and "Redis" in ready.json()["reason"]
    # The pause ends by itself (8 s): the node must come back without a restart.
    wait_until(lambda: httpx.get(f"{node.url}/readyz").status_code == 200, timeout_s=20)
    after = send(node.url, "en_jfk.flac")
    for task_id in (accepted, after):
        assert server_wait_final(node.url, task_id, timeout_s=120)["status"] == "finished"
