"""Redis Sentinel on real processes: a primary, a replica and Debian's redis-sentinel."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.backends.conftest import Cluster
from tests.backends.redis.cluster_rig import RedisProcess, send, wait_for_workers, wait_running
from tests.server_process import free_port, server_wait_final, stop_process, wait_until

pytestmark = pytest.mark.real_model

REDIS_SENTINEL = shutil.which("redis-sentinel") or "/usr/bin/redis-sentinel"
# The replica loads the primary's data from the socket, never from a file on its disk.
REPLICA_ARGS = ("--repl-diskless-load", "on-empty-db")


class Sentinels:
    """One redis-sentinel (quorum 1) watching `primary` as `mymaster`, fast to fail over."""

    def __init__(self, tmp_path: Path, primary: RedisProcess) -> None:
        self.port = free_port()
        config = tmp_path / "sentinel.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {tmp_path}\n"
            f"sentinel monitor mymaster 127.0.0.1 {primary.port} 1\n"
            "sentinel down-after-milliseconds mymaster 1000\n"
            "sentinel failover-timeout mymaster 5000\n"
        )
        self.process = subprocess.Popen(
            [REDIS_SENTINEL, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        self.client = redis.Redis(port=self.port, socket_timeout=5)

    def primary_port(self) -> int | None:
        """The port of the primary the sentinel names now."""
        try:
            address = self.client.sentinel_get_master_addr_by_name("mymaster")
        except redis.ConnectionError:
            return None
        return int(address[1]) if address else None

    def replicas_seen(self) -> int:
        """Replicas the sentinel has discovered."""
        try:
            return len(self.client.sentinel_slaves("mymaster"))
        except redis.ConnectionError:
            return 0


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[tuple[RedisProcess, RedisProcess, Sentinels]]:
    """A RAM-only primary, its replica and a sentinel that watches them."""
    (tmp_path / "primary").mkdir()
    (tmp_path / "replica").mkdir()
    primary = RedisProcess(tmp_path / "primary")
    replica = RedisProcess(
        tmp_path / "replica", None, "--replicaof", "127.0.0.1", str(primary.port), *REPLICA_ARGS
    )
    sentinels = Sentinels(tmp_path, primary)
    try:
        wait_until(lambda: sentinels.replicas_seen() >= 1, timeout_s=30)
        yield primary, replica, sentinels
    finally:
        stop_process(sentinels.process)
        replica.stop()
        primary.stop()


def test_nodes_and_workers_follow_a_failover(
    tmp_path: Path, replicated: tuple[RedisProcess, RedisProcess, Sentinels]
) -> None:
    """kill -9 of the primary mid-queue: the sentinel promotes the replica; the node and the
    worker follow it; jobs in flight end (finished, or failed/gone with a reason); jobs sent
    after the failover finish."""
    primary, replica, sentinels = replicated
    env = {
        "REDIS_SENTINELS": f"127.0.0.1:{sentinels.port}",
        "REDIS_SENTINEL_MASTER": "mymaster",
        "JOB_CLAIM_TIMEOUT_S": "5",
    }
    cluster = Cluster(tmp_path, primary)
    try:
        cluster.worker(**env)
        wait_for_workers(primary.client, 1)
        node = cluster.api_node(**env)
        in_flight = [send(node.url, "en_ls-test-clean_1089-134686-0000.flac") for _ in range(3)]
        wait_running(primary.client, in_flight[0])
        primary.kill()
        killed = time.monotonic()
        wait_until(lambda: sentinels.primary_port() == replica.port, timeout_s=30)
        wait_until(lambda: httpx.get(f"{node.url}/readyz").status_code == 200, timeout_s=30)
        print(f"failover: node ready again {time.monotonic() - killed:.1f} s after the kill")
        after = [send(node.url, "en_jfk.flac") for _ in range(3)]
        for task_id in after:
            assert server_wait_final(node.url, task_id, timeout_s=120)["status"] == "finished"
        for task_id in in_flight:
            answer = httpx.get(f"{node.url}/api/v1/status", params={"task_id": task_id})
            if answer.status_code == 200:
                body = server_wait_final(node.url, task_id, timeout_s=120)
                assert body["status"] == "finished" or body["error"], body
            else:
                assert answer.status_code == 404  # lost with the primary: said, not pending
        assert replica.client.hlen("whisper:running") == 0
    finally:
        cluster.stop()
