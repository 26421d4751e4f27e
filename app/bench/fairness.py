"""`whisper-api bench`'s fairness scenario: a late client's one file behind another's backlog.

One server per QUEUE_POLICY (fair, then fifo), BATCH_SIZE=1 so that each job is
one pass. Client A (127.0.0.1) queues BACKLOG short clips; then client B, from
another loopback address (127.0.0.2, another client for the server), uploads one.
The row's wall time is B's wait, from its upload until its transcript is ready,
with the position it was told at once. Fair: B waits about one job of A's plus
its own; fifo: behind the whole backlog.
"""

from __future__ import annotations

import time
from typing import Any

from app.bench.measure import SHORT, Row, clip_path, duration
from app.bench.servers import ServerProcess

__all__ = ["BACKLOG", "bench_fairness"]

BACKLOG = 8
LATE_CLIENT_ADDRESS = "127.0.0.2"
ROUTE = "/api/v1/transcribe?language=en"
WARM_UP = SHORT[0]


def _late_client_wait(policy: str, env: dict[str, str]) -> Row:
    """A's backlog, then B's one clip: B's wait and the position it was told."""
    import httpx

    server = ServerProcess(
        **env,
        BATCH_SIZE="1",
        QUEUE_POLICY=policy,
        MAX_QUEUED_PER_CLIENT=str(BACKLOG + 1),
    )
    backlog = [SHORT[index % len(SHORT)] for index in range(BACKLOG)]
    late = SHORT[0]
    try:
        server.wait_ready()
        late_transport = httpx.HTTPTransport(local_address=LATE_CLIENT_ADDRESS)
        with (
            httpx.Client(base_url=server.url, timeout=600) as client_a,
            httpx.Client(base_url=server.url, timeout=600, transport=late_transport) as client_b,
        ):
            _transcribe(client_a, WARM_UP)  # the model is loaded before anything counts
            for name in backlog:
                _submit(client_a, name)
            began = time.perf_counter()
            task_id = _submit(client_b, late)
            told = client_b.get(f"/api/v1/tasks/{task_id}").json()["position_in_queue"]
            _follow(client_b, task_id)
            waited = time.perf_counter() - began
    finally:
        server.stop()
    return Row(
        "fairness",
        f"late client behind {BACKLOG} jobs, {policy}",
        duration(late),
        waited,
        extra={"policy": policy, "backlog": BACKLOG, "position_told": told},
    )


def _submit(client: Any, name: str) -> str:
    data = clip_path(name).read_bytes()
    response = client.post(ROUTE, files={"file": (name, data)})
    response.raise_for_status()
    task_id: str = response.json()["task_id"]
    return task_id


def _follow(client: Any, task_id: str) -> None:
    """Until the task is over (its events stream ends)."""
    with client.stream("GET", f"/api/v1/tasks/{task_id}/events") as events:
        for _ in events.iter_lines():
            pass


def _transcribe(client: Any, name: str) -> None:
    _follow(client, _submit(client, name))


def bench_fairness(env: dict[str, str]) -> tuple[list[Row], str]:
    """Both policies' rows, and the one line that compares them."""
    fair = _late_client_wait("fair", env)
    fifo = _late_client_wait("fifo", env)
    line = (
        f"fairness: a late client's one file behind another client's {BACKLOG} waited "
        f"{fair.wall_s:.1f} s with QUEUE_POLICY=fair (told position "
        f"{fair.extra['position_told']}) and {fifo.wall_s:.1f} s with fifo (told position "
        f"{fifo.extra['position_told']})"
    )
    return [fair, fifo], line
