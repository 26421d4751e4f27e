"""Issue 25 in cluster mode: two API nodes, one worker, a real redis-server and tiny.en."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest

from tests.backends.conftest import Cluster
from tests.backends.redis.cluster_rig import wait_for_workers, wait_running
from tests.conftest import shared_clip
from tests.server_process import server_wait_final

pytestmark = pytest.mark.real_model

ROUTE = "/api/v1/transcribe?language=en"


def submit(client: httpx.Client, node: str, clip: str = "en_jfk.flac") -> str:
    """Upload a shared clip through `node` as `client` (its source address); the task id."""
    with shared_clip(clip).open("rb") as handle:
        response = client.post(node + ROUTE, files={"file": (clip, handle)})
    assert response.status_code == 200, response.text
    task_id: str = response.json()["task_id"]
    return task_id


def first_event(node: str, task_id: str) -> dict[str, Any]:
    """The first server-sent progress event of a task."""
    with httpx.stream("GET", f"{node}/api/v1/tasks/{task_id}/events", timeout=30) as sse:
        for line in sse.iter_lines():
            if line.startswith("data: "):
                event: dict[str, Any] = msgspec.json.decode(line[6:])
                return event
    raise AssertionError("no event")


def test_a_late_client_goes_second_across_two_api_nodes(cluster: Cluster) -> None:
    """A queues six through one node, B one through the other: B is told position 2 (task
    route and SSE, on either node) and finishes before A's fourth job."""
    cluster.worker(BATCH_SIZE="1")
    wait_for_workers(cluster.redis.client, 1)
    first, second = cluster.api_node(), cluster.api_node()
    client_a = httpx.Client(timeout=60)
    client_b = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=60)
    a_ids = [submit(client_a, first.url)]
    wait_running(cluster.redis.client, a_ids[0])
    a_ids += [submit(client_a, first.url) for _ in range(5)]
    b_id = submit(client_b, second.url)
    told = client_b.get(f"{second.url}/api/v1/tasks/{b_id}").json()["position_in_queue"]
    seen_elsewhere = first_event(first.url, b_id)["position_in_queue"]
    redis = cluster.redis.client
    stored = [key.decode() for key in redis.scan_iter()]
    stored += [value.decode() for value in redis.hvals("whisper:fair:client_of")]
    assert not any("127.0.0" in text for text in stored)  # clients are hashes, never addresses
    finals = {
        task_id: server_wait_final(second.url, task_id, timeout_s=240) for task_id in [b_id, *a_ids]
    }
    print(f"\ncluster fairness: B told position {told} (SSE on the other node: {seen_elsewhere})")
    assert 1 <= told <= 2 and 1 <= seen_elsewhere <= 2
    assert all(body["status"] == "finished" for body in finals.values())
    finished = {task_id: body["time_processing_finished"] for task_id, body in finals.items()}
    assert finished[b_id] < finished[a_ids[3]]
    assert redis.hlen("whisper:fair:waiting") == 0  # every line emptied
    assert redis.hlen("whisper:tickets") == 0
