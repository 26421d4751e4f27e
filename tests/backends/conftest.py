"""Fixtures for the cluster tests: a RAM-only redis-server and the processes around it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends.redis.cluster_rig import (
    RedisProcess,
    WorkerProcess,
    redis_server,
    start_api_node,
    start_worker,
)
from tests.server_process import Server


@pytest.fixture
def redis_proc(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test only (`--save "" --appendonly no`)."""
    with redis_server(tmp_path) as server:
        yield server


class Cluster:
    """API nodes and workers started by one test, all stopped at its end."""

    def __init__(self, tmp_path: Path, redis: RedisProcess) -> None:
        self.tmp_path = tmp_path
        self.redis = redis
        self.nodes: list[Server] = []
        self.workers: list[WorkerProcess] = []

    def api_node(self, **env: str) -> Server:
        """One more API node."""
        node = start_api_node(self.tmp_path, self.redis.url, **env)
        self.nodes.append(node)
        return node

    def worker(self, **env: str) -> WorkerProcess:
        """One more worker."""
        worker = start_worker(self.tmp_path, self.redis.url, **env)
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        """Stop every process this test started."""
        for worker in self.workers:
            worker.stop()
        for node in self.nodes:
            node.stop()


@pytest.fixture
def cluster(tmp_path: Path, redis_proc: RedisProcess) -> Iterator[Cluster]:
    """Start API nodes and workers on demand; stop them all afterwards."""
    started = Cluster(tmp_path, redis_proc)
    yield started
    started.stop()
