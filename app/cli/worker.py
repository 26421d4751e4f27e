"""`whisper-api worker`: a cluster worker. No HTTP; it loads models, takes jobs, writes results.

SIGTERM (or SIGINT) stops taking jobs and lets the running one finish within
SHUTDOWN_GRACE_S; waiting jobs stay in Redis for the other workers. A second
signal stops at once (the running job then fails with a reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

import structlog

from app.backends.base import FleetWorker
from app.backends.redis.conn import OUTAGE_ERRORS, connect, warn_if_persistent
from app.backends.redis.fleet import WorkerPresence, worker_name
from app.backends.redis.keys import Keys
from app.backends.redis.notify import PublishingNotifier
from app.backends.redis.queue import RedisWorkQueue, ensure_groups
from app.clock import Clock, SystemClock
from app.composition import worker_limits
from app.config import Settings, SettingsError, load_settings
from app.transcription.jobs import Job
from app.transcription.models import ModelManager
from app.transcription.worker import Worker

__all__ = ["ClusterWorker", "main"]

log = structlog.get_logger(__name__)


class ClusterWorker:
    """One worker process of a cluster: the stream consumer, the model runner, the writer."""

    def __init__(
        self, settings: Settings, *, keys: Keys | None = None, clock: Clock | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.keys = keys or Keys()
        self.client = connect(settings)
        self.models = ModelManager(settings)
        self.notifier = PublishingNotifier(
            self.client, self.keys, ttl_s=settings.delete_results_after_m * 60
        )
        self.queue = RedisWorkQueue(
            self.client,
            keys=self.keys,
            notifier=self.notifier,
            clock=self.clock,
            name=worker_name(),
            models=self.offered_models(),
            claim_timeout_s=settings.job_claim_timeout_s,
            max_attempts=settings.job_max_attempts,
            policy=settings.queue_policy,
        )
        self.presence = WorkerPresence(
            self.client, keys=self.keys, queue=self.queue, clock=self.clock
        )
        self.worker = Worker(
            self.queue,
            self.models,
            notifier=self.notifier,
            clock=self.clock,
            limits=worker_limits(settings),
        )

    def offered_models(self) -> list[str]:
        """Models jobs may name for this worker: those it has (or, with downloads, may fetch)."""
        if self.settings.allow_download:
            return self.models.names_within_cap()
        return self.models.allowed_models()

    def describe(self) -> FleetWorker:
        """This worker as the fleet view shows it."""
        return FleetWorker(
            name=self.queue.name,
            device=self.models.placement.device,
            models=tuple(self.offered_models()),
            batch_size=self.settings.batch_size,
            running_jobs=len(self.queue.running),
        )

    async def run(self, stop: asyncio.Event, hurry: asyncio.Event) -> None:
        """Work until `stop` is set, then finish the running job (until `hurry` or the grace)."""
        await self._connect()
        loop = asyncio.get_running_loop()
        background = [
            loop.create_task(self.notifier.write_forever(), name="redis-writer"),
            loop.create_task(self.presence.heartbeat_forever(self.describe), name="heartbeat"),
            loop.create_task(self.presence.follow_cancellations(), name="cancellations"),
        ]
        if self.settings.load_model_on_startup:
            await self._preload()
        self.worker.start()
        log.info("worker_started", device=self.models.placement.device)
        await stop.wait()
        await self._finish_running(hurry)
        await self.worker.stop()
        await self.notifier.flush(timeout_s=5)
        await self.presence.unregister()
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.models.close()
        await self.client.aclose()
        log.info("worker_stopped")

    async def _connect(self) -> None:
        """Wait for Redis (it may start after the workers), then make sure the group exists."""
        while True:
            try:
                await ensure_groups(self.client, self.queue.streams)
                break
            except OUTAGE_ERRORS as exc:
                log.warning("redis_unavailable", operation="connect", error=type(exc).__name__)
                await self.clock.sleep(1.0)
        await warn_if_persistent(self.client)

    async def _preload(self) -> None:
        try:
            await self.models.preload()
        except Exception as exc:  # jobs still try again (and step down) on their own
            log.error("model_preload_failed", error=type(exc).__name__)

    async def _finish_running(self, hurry: asyncio.Event) -> None:
        await self.queue.close()
        running = [job for job in self.queue.running if not job.is_final]
        log.info("worker_draining", running_jobs=len(running))
        if not running:
            return
        finished = asyncio.ensure_future(self._all_final(running))
        hurried = asyncio.ensure_future(hurry.wait())
        await asyncio.wait(
            {finished, hurried},
            timeout=self.settings.shutdown_grace_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
        hurried.cancel()
        finished.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await finished

    async def _all_final(self, jobs: list[Job]) -> None:
        for job in jobs:
            await self.notifier.wait_until_final(job)


def main() -> int:
    """Load settings, set up logging and run one worker until SIGTERM or SIGINT."""
    try:
        settings = load_settings(None)
    except SettingsError as exc:
        print(f"whisper-api: {exc}", file=sys.stderr)
        return 2
    if settings.queue_backend != "redis":
        print("whisper-api worker: set QUEUE_BACKEND=redis and REDIS_URL", file=sys.stderr)
        return 2
    from app.observability.logging import configure_logging

    configure_logging(settings)
    asyncio.run(_run_until_signalled(settings))
    return 0


async def _run_until_signalled(settings: Settings) -> None:
    stop, hurry = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        (hurry if stop.is_set() else stop).set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    await ClusterWorker(settings).run(stop, hurry)
