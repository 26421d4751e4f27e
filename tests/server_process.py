"""The real `whisper-api` process for tests: start, wait, upload, poll, measure, stop."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent


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

    def wait_ready(self, timeout_s: float = 90) -> None:
        """Poll /readyz until the model is loaded and the worker runs."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(self.output)
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("server not ready in time:\n" + self.output)

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
def served(tmp_path: Path, **env: str) -> Iterator[Server]:
    """A real server for a block (a module fixture's body): started, ready, then stopped."""
    server = start_server(tmp_path, **env)
    try:
        server.wait_ready()
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


def upload(
    url: str,
    route: str,
    clip: Path,
    *,
    headers: dict[str, str] | None = None,
    file_name: str | None = None,
    timeout_s: float = 120,
) -> httpx.Response:
    """POST a clip as multipart `file`, as curl -F does."""
    with clip.open("rb") as handle:
        return httpx.post(
            url + route,
            files={"file": (file_name or clip.name, handle)},
            headers=headers,
            timeout=timeout_s,
        )


def wait_final(
    url: str,
    task_id: str,
    *,
    headers: dict[str, str] | None = None,
    timeout_s: float = 180,
) -> dict[str, Any]:
    """Poll the seed's status route until finished or failed."""
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = httpx.get(
            url + "/api/v1/status", params={"task_id": task_id}, headers=headers, timeout=10
        )
        body = response.json()
        if response.status_code != 200:
            raise AssertionError(f"task gone before it was seen final: {body}")
        if body.get("status") in ("finished", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"task stuck: {body}")
