"""A real cluster for tests: Debian's redis-server, API node processes and worker processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.conftest import shared_clip
from tests.server_process import (
    REPO_ROOT,
    Server,
    free_port,
    server_submit,
    start_server,
    stop_process,
    wait_until,
)

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

# The bundled tiny.en everywhere: the smallest real model, short clips, fast on 2 cores.
CLUSTER_ENV = {
    "QUEUE_BACKEND": "redis",
    "MAX_MODEL": "tiny.en",
    "CPU_FALLBACK_MODEL": "tiny.en",
    "BATCH_SIZE": "1",
}


class RedisProcess:
    """A RAM-only redis-server on a free loopback port (or the one given)."""

    def __init__(self, tmp_path: Path, port: int | None = None, *extra: str) -> None:
        self.tmp_path = tmp_path
        self.port = port or free_port()
        self.extra = extra
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis(port=self.port, socket_timeout=10)
        self.process = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.tmp_path), *self.extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_until(self.answers, timeout_s=10, message="redis-server did not answer")
        except AssertionError:
            process.kill()
            raise
        return process

    def answers(self) -> bool:
        """Whether it answers PING now."""
        try:
            return bool(self.client.ping())
        except redis.ConnectionError:
            return False

    def kill(self) -> None:
        """SIGKILL: everything it held is gone (RAM only)."""
        self.process.kill()
        self.process.wait(timeout=10)

    def restart(self) -> None:
        """SIGKILL, then the same server on the same port, empty, as after a crash."""
        self.kill()
        self.process = self._spawn()

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def audio_keys(self) -> list[bytes]:
        """Keys that hold an upload now."""
        return list(self.client.scan_iter(match="whisper:audio:*"))


@contextmanager
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    """Start redis-server without persistence; stop it afterwards."""
    server = RedisProcess(tmp_path)
    try:
        yield server
    finally:
        server.stop()


class WorkerProcess:
    """A `whisper-api worker` process and its captured output."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.process = process
        self.log_path = log_path

    @property
    def name(self) -> str:
        """Its name in the fleet (host and pid), as in whisper:running."""
        return f"{os.uname().nodename}-{self.process.pid}"

    @property
    def output(self) -> str:
        """What it logged so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not end."""
        stop_process(self.process)


def start_worker(tmp_path: Path, redis_url: str, **env: str) -> WorkerProcess:
    """Start `python -m app worker` against `redis_url`."""
    log_path = tmp_path / f"worker-{len(list(tmp_path.glob('worker-*')))}.out"
    environment = {
        **os.environ,
        "LOG_FILE": "",
        "ALLOW_DOWNLOAD": "0",
        "USE_GPU_IF_AVAILABLE": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        **CLUSTER_ENV,
        "REDIS_URL": redis_url,
        **env,
    }
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "worker"],
            cwd=REPO_ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return WorkerProcess(process, log_path)


def start_api_node(tmp_path: Path, redis_url: str, **env: str) -> Server:
    """Start `python -m app serve` as an API node of the cluster; wait until it is ready."""
    server = start_server(tmp_path, **{**CLUSTER_ENV, "REDIS_URL": redis_url, **env})
    server.wait_ready()
    return server


def wait_for_workers(client: redis.Redis, count: int, timeout_s: float = 90) -> None:
    """Until `count` workers have registered (their model is loaded by then or soon)."""
    wait_until(
        lambda: client.zcount("whisper:workers", f"({time.time() * 1000:.0f}", "+inf") >= count,
        timeout_s=timeout_s,
        interval_s=0.1,
        message=f"fewer than {count} workers registered",
    )


def wait_running(client: redis.Redis, task_id: str, timeout_s: float = 60) -> str:
    """The name of the worker that has started the job, once one has."""
    owner: bytes = wait_until(
        lambda: client.hget("whisper:running", task_id),
        timeout_s=timeout_s,
        message="no worker started the job",
    )
    return owner.decode()


def send(url: str, clip: str) -> str:
    """Upload a shared clip (English) to an API node; its task id."""
    return server_submit(url, shared_clip(clip))
