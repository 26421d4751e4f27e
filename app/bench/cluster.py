"""`whisper-api bench`'s cluster scenario: one API node with one worker, then with two.

Both runs use the same redis-server (RAM only, a free loopback port), the same
short clips sent by one client each at the same moment, and the same model. The
row's `x rt` is the throughput (audio seconds per wall second); the ratio of the
two-worker run to the one-worker run is the scale-out factor. Workers on the same
machine share its cores: each of two workers gets half the CPU threads, so on a
small machine the factor stays near 1 (the work is the same, only split).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from app.bench.measure import REPO_ROOT, SHORT, Row
from app.bench.servers import ServerProcess, clients_at_once, free_port

__all__ = ["bench_cluster"]


@contextlib.contextmanager
def _redis() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("bench: the cluster scenario needs redis-server (make redis)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "app", "worker"],
        env={**os.environ, "LOG_FILE": "", "LOG_LEVEL": "WARNING", **env},
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _run(workers: int, threads: int, env: dict[str, str]) -> Row:
    """The clients scenario against one API node and `workers` workers of a fresh queue."""
    with _redis() as url:
        cluster = {
            **env,
            "QUEUE_BACKEND": "redis",
            "REDIS_URL": url,
            "USE_GPU_IF_AVAILABLE": "0",
            "CPU_THREADS": str(max(1, threads // workers)),
        }
        started = [_worker(cluster) for _ in range(workers)]
        node = ServerProcess(**cluster)
        try:
            node.wait_ready()
            clients_at_once(node.url, None, system="warm-up")  # every worker loads its model
            row = clients_at_once(node.url, None, system=f"cluster, {workers} worker(s)")
        finally:
            node.stop()
            for process in started:
                process.terminate()
            for process in started:
                process.wait(timeout=60)
    row.scenario = "cluster"
    row.extra = {"workers": workers, "threads_per_worker": max(1, threads // workers)}
    return row


def bench_cluster(threads: int, env: dict[str, str]) -> tuple[list[Row], dict[str, Any]]:
    """One worker, then two: the rows and the scale-out factor."""
    one = _run(1, threads, env)
    two = _run(2, threads, env)
    factor = two.speed / one.speed if one.speed else 0.0
    summary = {
        "clips": len(SHORT),
        "throughput_1_worker": round(one.speed, 3),
        "throughput_2_workers": round(two.speed, 3),
        "scale_out_factor": round(factor, 3),
        "cpus": os.cpu_count(),
    }
    return [one, two], summary
