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
from typing import Any

import structlog

from app.backends.base import FleetWorker
from app.backends.redis.conn import OUTAGE_ERRORS, connect, warn_if_persistent
from app.backends.redis.fleet import WorkerPresence, worker_name
from app.backends.redis.keys import Keys
from app.backends.redis.notify import PublishingNotifier, stop_tasks
from app.backends.redis.queue import RedisWorkQueue, ensure_groups
from app.clock import Clock, SystemClock
from app.composition import worker_limits
from app.config import Settings, SettingsError, load_settings
from app.transcription.jobs import Job
from app.transcription.models import ModelManager
from app.transcription.speakers.stage import SpeakerStage
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
            # As in one process: speaker labels are part of every surface's contract.
            speaker_stage=SpeakerStage(settings.speaker_model),
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

    async def run(self, stop: asyncio.Event, hurry: asyncio.Event) -> bool:
        """Work until `stop` is set, then finish the running job (until `hurry` or the grace).

        False when a loop that should run for ever ended (a bug, an unforeseen reply): the
        worker then stops as on SIGTERM and the process exits non-zero, so its supervisor
        starts it again rather than keep a worker that takes no job."""
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
        healthy = await self._until_stopped_or_broken(stop, background)
        await self._finish_running(hurry)
        await self.worker.stop()
        await self.notifier.flush(timeout_s=5)
        await self.presence.unregister()
        await stop_tasks(background)
        await self.models.close()
        await self.client.aclose()
        log.info("worker_stopped", healthy=healthy)
        return healthy

    async def _until_stopped_or_broken(
        self, stop: asyncio.Event, background: list[asyncio.Task[None]]
    ) -> bool:
        """Wait for `stop`; False as soon as the worker loop or a background loop ends."""
        stopped = asyncio.ensure_future(stop.wait())
        watched: set[asyncio.Future[Any]] = {*background, stopped}
        if self.worker.task is not None:
            watched.add(self.worker.task)
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        broken = [task for task in done if task in background or task is self.worker.task]
        for task in broken:
            error = None if task.cancelled() else task.exception()
            log.error(
                "background_task_failed",
                task=task.get_name() if isinstance(task, asyncio.Task) else "?",
                error=type(error).__name__ if error else None,
            )
        return not broken

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
    return 0 if asyncio.run(_run_until_signalled(settings)) else 1


async def _run_until_signalled(settings: Settings) -> bool:
    stop, hurry = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        (hurry if stop.is_set() else stop).set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    return await ClusterWorker(settings).run(stop, hurry)
