"""Servers under test: `whisper-api serve` in a fresh process, and clients that time it.

Imports none of the scenarios, so each scenario module can import it at module level.
"""

from __future__ import annotations

import concurrent.futures
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from app.bench.measure import (
    REPO_ROOT,
    SHORT,
    Row,
    clip_path,
    duration,
    mean_wer,
    percentile,
    rss_mib,
)

__all__ = [
    "ServerProcess",
    "Upload",
    "clients_at_once",
    "free_port",
    "running_server",
    "transcribe_via_http",
]

# One timed request: (url, clip name) -> (seconds, transcript, HTTP status).
Upload = Callable[[str, str], tuple[float, str, int]]


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """`whisper-api serve` in a fresh process on a free loopback port."""

    def __init__(self, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {
            **os.environ,
            "PORT": str(self.port),
            "LISTEN": "127.0.0.1",
            "LOG_FILE": "",
            "LOG_LEVEL": "WARNING",
            "USE_GPU_IF_AVAILABLE": "0",
            **env,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve"],
            env=environment,
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.started = time.perf_counter()

    def wait_ready(self, timeout_s: float = 120) -> float:
        """Seconds from start until /readyz answers 200."""
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit("bench: the server exited during start-up")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return time.perf_counter() - self.started
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise SystemExit("bench: the server did not become ready")

    def stop(self) -> None:
        """SIGTERM and wait."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


@contextmanager
def running_server(url: str | None, **env: str) -> Iterator[tuple[str, int | None, float]]:
    """Yield (base URL, pid or None, seconds to ready) for a local or external server."""
    if url is not None:
        yield url, None, 0.0
        return
    server = ServerProcess(**env)
    try:
        ready_s = server.wait_ready()
        yield server.url, server.process.pid, ready_s
    finally:
        server.stop()


def transcribe_via_http(url: str, name: str) -> tuple[float, str, int]:
    """Upload through the task API, follow its events to the end; (seconds, text, status)."""
    import httpx

    data = clip_path(name).read_bytes()
    with httpx.Client(base_url=url, timeout=600) as client:
        began = time.perf_counter()
        response = client.post("/api/v1/transcribe", files={"file": (name, data)})
        if response.status_code != 200:
            return time.perf_counter() - began, "", response.status_code
        task_id = response.json()["task_id"]
        with client.stream("GET", f"/api/v1/tasks/{task_id}/events") as events:
            for _ in events.iter_lines():
                pass
        elapsed = time.perf_counter() - began
        task = client.get(f"/api/v1/tasks/{task_id}").json()
    return elapsed, task.get("transcript") or "", 200


def clients_at_once(
    base: str, pid: int | None, send: Upload | None = None, system: str = "whisper-api"
) -> Row:
    """Every short clip uploaded by its own client at the same moment."""
    upload = send or transcribe_via_http
    began = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(SHORT)) as pool:
        results = list(pool.map(lambda name: upload(base, name), SHORT))
    wall = time.perf_counter() - began
    latencies = [seconds for seconds, _, status in results if status == 200] or [wall]
    return Row(
        "clients", f"{system} ({len(SHORT)} at once)", sum(duration(n) for n in SHORT), wall,
        p50_s=percentile(latencies, 0.5), p95_s=percentile(latencies, 0.95),
        max_s=max(latencies), wer=mean_wer(SHORT, results),
        refused=sum(status != 200 for _, _, status in results),
        rss_mib=rss_mib(pid, "VmHWM") if pid else None,
    )  # fmt: skip
