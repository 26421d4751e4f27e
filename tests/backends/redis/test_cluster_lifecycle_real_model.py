"""Cluster behaviour beyond one upload: batching, events and DELETE across nodes, SIGTERM."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from app.bench.runner import word_error_rate
from tests.backends.conftest import Cluster
from tests.backends.redis.cluster_rig import send, wait_for_workers, wait_running
from tests.conftest import reference_text, shared_clip
from tests.server_process import read_sse, server_upload, server_wait_final, wait_until

pytestmark = pytest.mark.real_model

BUSY_CLIP = "en_ls-test-clean_1089-134686-0000.flac"
LONG_CLIP = "en_longform_tedlium_120s.flac"
SHORT_CLIPS = ["en_ljspeech_LJ001-0001.wav", "en_ljspeech_LJ001-0002.wav", "en_jfk.flac"]


def test_short_jobs_waiting_together_share_one_batch(cluster: Cluster) -> None:
    """Short jobs queued behind a busy worker are read together and decoded in one pass."""
    batching = {"BATCH_SIZE": "4"}
    worker = cluster.worker(**batching)
    wait_for_workers(cluster.redis.client, 1)
    node = cluster.api_node(**batching)
    busy = send(node.url, BUSY_CLIP)
    with ThreadPoolExecutor(max_workers=3) as clients:
        task_ids = list(clients.map(lambda clip: send(node.url, clip), SHORT_CLIPS))
    assert server_wait_final(node.url, busy)["status"] == "finished"
    for clip, task_id in zip(SHORT_CLIPS, task_ids, strict=True):
        body = server_wait_final(node.url, task_id)
        assert body["status"] == "finished", body
        assert word_error_rate(reference_text(clip), body["transcript"]) <= 0.25
    assert '"event": "batch_decoded"' in worker.output


def test_events_and_delete_work_through_the_other_node(cluster: Cluster) -> None:
    """Progress events stream from a node that did not take the upload; DELETE there stops it."""
    cluster.worker()
    wait_for_workers(cluster.redis.client, 1)
    first, second = cluster.api_node(), cluster.api_node()
    followed = send(first.url, "en_jfk.flac")
    events = read_sse(f"{second.url}/api/v1/tasks/{followed}/events", timeout_s=60)
    statuses = [event for event, _ in events]
    assert statuses[-1] == "finished" and "processing" in statuses
    deleted = send(first.url, LONG_CLIP)
    wait_running(cluster.redis.client, deleted)
    assert httpx.delete(f"{second.url}/api/v1/tasks/{deleted}").status_code == 200
    assert httpx.get(f"{first.url}/api/v1/tasks/{deleted}").status_code == 404
    wait_until(
        lambda: not cluster.redis.client.hexists("whisper:running", deleted),
        timeout_s=60,
        message="the worker did not stop the deleted job",
    )
    assert cluster.redis.audio_keys() == []
    assert cluster.redis.client.exists(f"whisper:job:{deleted}") == 0


def test_sigterm_finishes_the_running_job_and_leaves_the_waiting_ones(cluster: Cluster) -> None:
    """SIGTERM on a worker: its running job finishes; a waiting job goes to the next worker."""
    leaving = cluster.worker()
    wait_for_workers(cluster.redis.client, 1)
    node = cluster.api_node()
    running = send(node.url, BUSY_CLIP)
    wait_running(cluster.redis.client, running)
    waiting = send(node.url, "en_jfk.flac")
    leaving.process.terminate()
    assert server_wait_final(node.url, running)["status"] == "finished"
    assert leaving.process.wait(timeout=60) == 0
    assert httpx.get(f"{node.url}/api/v1/tasks/{waiting}").json()["status"] == "pending"
    cluster.worker()
    body = server_wait_final(node.url, waiting, timeout_s=120)
    assert body["status"] == "finished", body


def test_a_job_naming_a_model_goes_only_to_workers_offering_it(cluster: Cluster) -> None:
    """model=base runs on the worker that offers base; a model no worker offers is a 400."""
    small = cluster.worker()  # tiny.en only
    cluster.worker(MAX_MODEL="base", CPU_FALLBACK_MODEL="base")
    wait_for_workers(cluster.redis.client, 2)
    node = cluster.api_node(MAX_MODEL="base", CPU_FALLBACK_MODEL="base")
    route = "/api/v1/transcribe?language=en&model=base"
    task_ids = [
        server_upload(node.url, route, shared_clip(clip)).json()["task_id"] for clip in SHORT_CLIPS
    ]
    for task_id in task_ids:
        body = server_wait_final(node.url, task_id)
        assert body["status"] == "finished" and body["used_model_size"] == "base", body
    assert "job_finished" not in small.output
    refused = server_upload(node.url, "/api/v1/transcribe?model=tiny", shared_clip("en_jfk.flac"))
    assert refused.status_code == 400
    assert "no worker of this cluster offers model tiny" in refused.json()["detail"]
