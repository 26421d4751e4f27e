"""QUEUE_POLICY=fair through the task API: positions everywhere, the late client's turn."""

from __future__ import annotations

import functools
import threading
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.asgi_helpers import eventually
from tests.conftest import AppFactory, FakeTranscriber, wav_bytes

KEYS = {name: f"fair-queue-test-key-{name}-0123456789" for name in "abc"}


async def send(client: AsyncTestClient[Litestar], who: str) -> str:
    """Upload a second of tone as client `who` (its API key); the task id."""
    response = await client.post(
        "/api/v1/transcribe",
        files={"file": ("clip.wav", wav_bytes(), "audio/wav")},
        params={"language": "en"},
        headers={"Authorization": f"Bearer {KEYS[who]}"},
    )
    assert response.status_code == 200, response.text
    task_id: str = response.json()["task_id"]
    return task_id


async def positions(client: AsyncTestClient[Litestar], who: str, task_id: str) -> list[Any]:
    """The position as the task route and the seed's status route say it.

    (The SSE events say the same: the cluster test reads them from a real server, as the
    test client answers a stream only once it has ended.)
    """
    headers = {"Authorization": f"Bearer {KEYS[who]}"}
    task = (await client.get(f"/api/v1/tasks/{task_id}", headers=headers)).json()
    status = (
        await client.get("/api/v1/status", params={"task_id": task_id}, headers=headers)
    ).json()
    return [task["position_in_queue"], status["position_in_queue"]]


async def task_of(client: AsyncTestClient[Litestar], who: str, task_id: str) -> dict[str, Any]:
    """The task as its owner reads it."""
    headers = {"Authorization": f"Bearer {KEYS[who]}"}
    body: dict[str, Any] = (await client.get(f"/api/v1/tasks/{task_id}", headers=headers)).json()
    return body


async def test_a_late_clients_job_goes_second_and_positions_say_so(
    build_app: AppFactory, fake_transcriber: FakeTranscriber
) -> None:
    """A queues six, B one: B is told 2 everywhere, runs before A's fourth; C moves A's back."""
    gate = threading.Event()
    fake_transcriber.gate = gate
    app = build_app(api_keys=tuple(KEYS.values()), batch_size=1, max_task_queue_size=16)
    async with AsyncTestClient(app=app) as client:
        a_ids = [await send(client, "a")]
        await eventually(lambda: _running(client, a_ids[0]))
        a_ids += [await send(client, "a") for _ in range(5)]
        b_id = await send(client, "b")
        assert await positions(client, "b", b_id) == [2, 2]
        assert (await task_of(client, "a", a_ids[2]))["position_in_queue"] == 3
        await send(client, "c")  # a third client: one more job goes before A's third
        assert (await task_of(client, "a", a_ids[2]))["position_in_queue"] == 4
        assert (await task_of(client, "b", b_id))["position_in_queue"] == 2
        gate.set()
        finished = {}
        for who, task_id in [("b", b_id)] + [("a", task_id) for task_id in a_ids]:
            body = await eventually(functools.partial(_final, client, who, task_id))
            assert body["status"] == "finished"
            finished[task_id] = body["time_processing_finished"]
    assert finished[b_id] < finished[a_ids[3]]


async def _running(client: AsyncTestClient[Litestar], task_id: str) -> bool:
    return bool((await task_of(client, "a", task_id))["position_in_queue"] == 0)


async def _final(client: AsyncTestClient[Litestar], who: str, task_id: str) -> Any:
    body = await task_of(client, who, task_id)
    return body if body["status"] in ("finished", "failed") else None
