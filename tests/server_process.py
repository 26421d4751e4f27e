"""The real `whisper-api` process for tests: start, wait, upload, poll, read, measure, stop.

Everything here is synchronous and talks HTTP to a real server process (its URL);
tests/asgi_helpers.py has the asynchronous counterparts for an app in the test's own
process. `wait_until` is the one way a test here waits for something: a condition
polled until a deadline, never a fixed pause.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout_s: float = 10.0,
    interval_s: float = 0.05,
    message: str | Callable[[], str] = "condition not met in time",
) -> T:
    """Call `check` until it returns something truthy, and return that; fail after `timeout_s`.

    `message` (or what it returns, read when the time is up) says what was awaited.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(message() if callable(message) else message)
        time.sleep(interval_s)


def log_records(text: str) -> list[dict[str, Any]]:
    """The JSON log records in a process's output (other lines are skipped)."""
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "event" in record:
            records.append(record)
    return records


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A running server process, its base URL and its captured output."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path

    @property
    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log records the process wrote so far (JSON lines on a non-terminal)."""
        return log_records(self.output)

    def wait_logged(
        self, accept: Callable[[dict[str, Any]], bool], *, after: int = 0, timeout_s: float = 60
    ) -> dict[str, Any]:
        """The first log record `accept` takes, past the first `after` records (those seen
        before), waiting up to `timeout_s` for it to be written."""
        return wait_until(
            lambda: next((r for r in self.log_records()[after:] if accept(r)), None),
            timeout_s=timeout_s,
            interval_s=0.1,
            message=lambda: "no such log record in time:\n" + self.output,
        )

    def wait_ready(self, timeout_s: float = 90) -> None:
        """Poll /readyz until the model is loaded and the worker runs."""

        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(self.output)
            try:
                return httpx.get(self.url + "/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(
            ready,
            timeout_s=timeout_s,
            interval_s=0.1,
            message=lambda: "server not ready in time:\n" + self.output,
        )

    def peak_rss_mib(self) -> float:
        """The process's peak resident memory so far (VmHWM), in MiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM in /proc status")

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit status."""
        return stop_process(self.process)


def stop_process(process: subprocess.Popen[Any]) -> int:
    """SIGTERM, then SIGKILL if it does not end within 30 s; returns the exit status."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return int(process.returncode)


@contextlib.contextmanager
def served(
    tmp_path: Path,
    *,
    ready_timeout_s: float = 90,
    launcher: Sequence[str] = (),
    cwd: Path = REPO_ROOT,
    **env: str,
) -> Iterator[Server]:
    """A real server for a block (a test's, or a fixture's): started, ready, then stopped.

    The arguments are `start_server`'s, and how long it may take to be ready.
    """
    server = start_server(tmp_path, launcher=launcher, cwd=cwd, **env)
    try:
        server.wait_ready(timeout_s=ready_timeout_s)
        yield server
    finally:
        server.stop()


def start_server(
    tmp_path: Path,
    *,
    launcher: Sequence[str] = (),
    cwd: Path = REPO_ROOT,
    **env: str,
) -> Server:
    """Start `python -m app serve` on a free loopback port with extra environment.

    `launcher` is put in front of the command line (e.g. a mount namespace set-up
    that ends in `exec "$@"`).
    """
    port = free_port()
    log_path = tmp_path / f"server-{port}.out"
    environment = {
        **os.environ,
        "PORT": str(port),
        "LISTEN": "127.0.0.1",
        "LOG_FILE": "",
        "ALLOW_DOWNLOAD": "0",
        "USE_GPU_IF_AVAILABLE": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        **env,
    }
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [*launcher, sys.executable, "-m", "app", "serve"],
            cwd=cwd,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Server(process, f"http://127.0.0.1:{port}", log_path)


def server_upload(
    url: str,
    route: str,
    clip: Path,
    *,
    headers: dict[str, str] | None = None,
    file_name: str | None = None,
    timeout_s: float = 120,
) -> httpx.Response:
    """POST a clip to a real server as multipart `file`, as curl -F does."""
    with clip.open("rb") as handle:
        return httpx.post(
            url + route,
            files={"file": (file_name or clip.name, handle)},
            headers=headers,
            timeout=timeout_s,
        )


def server_submit(url: str, clip: Path, route: str = "/api/v1/transcribe?language=en") -> str:
    """Upload a clip that must be accepted; its task id."""
    response = server_upload(url, route, clip)
    assert response.status_code == 200, response.text
    return str(response.json()["task_id"])


def server_task(url: str, task_id: str, *, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The task as the seed's status route reports it (fails on anything but 200)."""
    response = httpx.get(
        url + "/api/v1/status", params={"task_id": task_id}, headers=headers, timeout=10
    )
    body: dict[str, Any] = response.json()
    if response.status_code != 200:
        raise AssertionError(f"task {task_id} answered {response.status_code}: {body}")
    return body


def server_decoder_status(url: str) -> dict[str, Any]:
    """A real server's /api/v1/decoder_status: its models, queue and workers."""
    response = httpx.get(url + "/api/v1/decoder_status", timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def server_wait_status(
    url: str,
    task_id: str,
    *statuses: str,
    headers: dict[str, str] | None = None,
    timeout_s: float = 60,
) -> dict[str, Any]:
    """Poll a real server's seed status route until the task's status is one of `statuses`."""
    seen: dict[str, Any] = {}

    def reached() -> dict[str, Any] | None:
        seen.clear()
        seen.update(server_task(url, task_id, headers=headers))
        return dict(seen) if seen.get("status") in statuses else None

    return wait_until(
        reached,
        timeout_s=timeout_s,
        interval_s=0.1,
        message=lambda: f"task not {' or '.join(statuses)} in time: {seen}",
    )


def server_wait_final(
    url: str,
    task_id: str,
    *,
    headers: dict[str, str] | None = None,
    timeout_s: float = 180,
) -> dict[str, Any]:
    """Poll a real server's seed status route until the task is finished or failed."""
    return server_wait_status(
        url, task_id, "finished", "failed", headers=headers, timeout_s=timeout_s
    )


def iter_sse(
    url: str, *, headers: dict[str, str] | None = None, timeout_s: float = 120
) -> Iterator[tuple[str, str]]:
    """Follow a server-sent event stream until the server ends it: (event, data) pairs as
    they come; `event` is "" for a message without an event line, comments are skipped."""
    name = ""
    with httpx.stream("GET", url, headers=headers, timeout=timeout_s) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                yield name, line.split(":", 1)[1].strip()
                name = ""


def read_sse(
    url: str, *, headers: dict[str, str] | None = None, timeout_s: float = 120
) -> list[tuple[str, str]]:
    """Every (event, data) pair of a server-sent event stream, once the server has ended it."""
    return list(iter_sse(url, headers=headers, timeout_s=timeout_s))
