"""The transcription service: the one intake every surface uses, and the jobs' lifecycle.

Framework-free. Every HTTP surface (task API, OpenAI, /asr, UI) hands uploads to
`TranscriptionService.upload_place`, `receive_body` and `accept`, so they share
one queue, one model manager, one store and the same rules for bad input. Where
jobs live is the `TaskBackend` it is given (`app.backends.base`): this process's
memory, or a cluster's Redis. The composition root (`app.composition`) builds
the backend, the notifier, the worker, the upload gate and the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import msgspec
import structlog

from app.backends.base import ClientQueueFullError, QueueFullError, TaskBackend
from app.clock import Clock
from app.config import Settings
from app.observability.metrics import ServiceMetrics, StateSnapshot
from app.service.accounting import JobAccounting
from app.service.draining import Shutdown
from app.service.errors import ShuttingDownError
from app.service.reservation import (
    Reservation,
    ServiceStatus,
    metrics_snapshot,
    service_status,
)
from app.service.uploads import BodyPace, UploadAbandonedError, UploadGate
from app.transcription.audio import probe_upload
from app.transcription.jobs import Job, JobNotifier, Payload
from app.transcription.models import ModelManager
from app.transcription.speakers.stage import check_references
from app.transcription.types import SubtitleShape, TaskType, TranscribeOptions, Transcript
from app.transcription.worker import Worker

__all__ = [
    "JobSpec",
    "ServiceStatus",
    "TranscriptionService",
]

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Uploads probed at the same time: probing is CPU-bound (it decodes the first
# seconds), so many concurrent uploads wait here rather than pile up.
PROBE_CONCURRENCY = max(1, min(4, (os.cpu_count() or 1) // 2))


class JobSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What a surface asks for one upload: the job's kind, options and who asks."""

    task_type: TaskType
    options: TranscribeOptions
    subtitle_shape: SubtitleShape = msgspec.field(default_factory=SubtitleShape)
    surface: str = "tasks"
    owner: str | None = None
    # Who sends it (a hash of the API key or address): the per-client bounds and fair order.
    client: str | None = None
    raw_pcm: bool = False


class TranscriptionService:
    """The intake, the task lookups and the lifecycle around an injected `TaskBackend`."""

    def __init__(
        self,
        settings: Settings,
        models: ModelManager,
        *,
        backend: TaskBackend,
        notifier: JobNotifier,
        clock: Clock,
        worker: Worker | None,
        uploads: UploadGate | None = None,
    ) -> None:
        self.settings = settings
        self.models = models
        self.backend = backend
        self.notifier = notifier
        self.clock = clock
        self.worker = worker
        self.uploads = uploads or UploadGate(
            limit=settings.max_uploads_in_flight,
            per_client=settings.uploads_in_flight_per_client,
            timeout_s=settings.upload_timeout_s,
            clock=clock,
        )
        self._probe_slots = asyncio.Semaphore(PROBE_CONCURRENCY)
        self._background: list[asyncio.Task[None]] = []
        self.metrics = ServiceMetrics(self._metrics_snapshot)
        self.accounting = JobAccounting(self.metrics)
        self.shutdown = Shutdown(
            grace_s=settings.shutdown_grace_s,
            backend=backend,
            notifier=notifier,
            clock=clock,
            accounting=self.accounting,
            stop_running=worker.stop if worker is not None else None,
        )

    # -- lifecycle

    async def start(self) -> None:
        """Start the backend, the worker, the expiry sweeper and, if configured, the preload."""
        await self.backend.start()
        if self.worker is not None:
            self.worker.start()
        sweep_every_s = self.settings.run_result_expiry_check_m * 60
        if sweep_every_s > 0:
            self._spawn(self._sweep_forever(sweep_every_s), "result-sweeper")
        if self.settings.load_model_on_startup:
            self._spawn(self._preload(), "model-preload")

    async def stop(self) -> None:
        """Drain (see `drain`), stop the worker, drop the models.

        A job still running when SHUTDOWN_GRACE_S has passed is stopped and fails.
        """
        await self.drain()
        if self.worker is not None:
            await self.worker.stop()
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.backend.close()
        await self.models.close()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._background.append(asyncio.get_running_loop().create_task(coro, name=name))

    async def _sweep_forever(self, interval_s: float) -> None:
        while True:
            await self.clock.sleep(interval_s)
            await self.backend.sweep()

    async def _preload(self) -> None:
        try:
            await self.models.preload()
        except Exception as exc:  # jobs still try again (and step down) on their own
            log.error("model_preload_failed", error=type(exc).__name__)

    # -- shutting down (see app.service.draining)

    @property
    def is_draining(self) -> bool:
        """Whether the service is shutting down (readiness is 503, uploads are refused)."""
        return self.shutdown.draining

    def begin_draining(self) -> None:
        """Refuse new uploads from now on and start the grace period (signal-safe)."""
        self.shutdown.begin()

    def end_grace(self) -> None:
        """Give running jobs no more time: the next `drain`/`stop` stops them (signal-safe)."""
        self.shutdown.end_grace()

    async def drain(self, *, pickup: bool = False) -> None:
        """Refuse uploads, fail waiting jobs, let running ones finish within the grace.

        Jobs still running when the grace is over are stopped and fail with the
        reason (their clients get that answer; with `pickup`, pollers get a
        moment to read it; see `Shutdown.drain`). Bodies still arriving are
        abandoned at once: their clients get 503 with Retry-After now, not an
        error when the server closes their connection.
        """
        self.uploads.close()
        await self.shutdown.drain(pickup=pickup)

    # -- the intake

    def retry_after_s(self) -> int:
        """A fair guess of when a place frees up, for 429's Retry-After."""
        return self.accounting.retry_after_s()

    def shutting_down_error(self, reason: str | None = None) -> ShuttingDownError:
        """503 + Retry-After: the server is shutting down (`reason`: what became of a job)."""
        retry_after = max(1, math.ceil(self.settings.shutdown_grace_s))
        what = reason or "the server is shutting down and accepts no new uploads"
        return ShuttingDownError(f"{what}; try again in about {retry_after} s", retry_after)

    def _queue_full(self, refused: QueueFullError) -> QueueFullError:
        retry_after = self.retry_after_s()
        if refused.limit == "client":
            what = (
                f"you already have {self.settings.queued_per_client} jobs waiting "
                "(MAX_QUEUED_PER_CLIENT); others' jobs go in turn with yours"
            )
            return ClientQueueFullError(
                "client", f"{what}; try again in about {retry_after} s", retry_after
            )
        if refused.limit == "bytes":
            what = f"the queue holds its limit of {self.settings.max_queued_mb} MB of uploads"
        else:
            what = f"the queue is full ({self.backend.max_waiting} waiting jobs)"
        return QueueFullError(
            refused.limit, f"{what}; try again in about {retry_after} s", retry_after
        )

    @contextlib.asynccontextmanager
    async def upload_place(
        self, expected_bytes: int = 0, *, client: str | None = None
    ) -> AsyncIterator[Reservation]:
        """Hold one of MAX_UPLOADS_IN_FLIGHT upload places while a body arrives and is probed.

        Refuses at once: ShuttingDownError while shutting down, QueueFullError when
        the queue has no room now (for `expected_bytes`, a declared Content-Length;
        ClientQueueFullError when `client` has MAX_QUEUED_PER_CLIENT jobs waiting),
        TooManyUploadsError when every upload place is taken (TooManyClientUploadsError
        when `client` holds MAX_UPLOADS_IN_FLIGHT_PER_CLIENT of them). In one process the
        queue place itself is taken only by `accept`, once the upload is whole; a
        cluster's backend holds one across its nodes while the body arrives.
        """
        if self.shutdown.draining:
            raise self.shutting_down_error()
        try:
            place = await self.backend.reserve(expected_bytes, client)
        except QueueFullError as refused:
            raise self._queue_full(refused) from None
        reservation = Reservation(self.backend, place)
        try:
            async with self.uploads.place(client):
                yield reservation
        finally:
            await reservation.release()

    def body_pace(self) -> BodyPace:
        """The pace of a body about to be read: give its `arrived` to the body read."""
        return self.uploads.pace()

    async def receive_body(self, body: Coroutine[Any, Any, T], pace: BodyPace | None = None) -> T:
        """Await an upload's body within UPLOAD_TIMEOUT_S (UploadTimeoutError, 408).

        With a `pace` the body read reports to, also within UPLOAD_IDLE_TIMEOUT_S
        of each read and at UPLOAD_MIN_RATE_BPS on average after the grace
        (UploadIdleError, UploadTooSlowError: 408). While shutting down a body
        still arriving is abandoned at once with ShuttingDownError (503 + Retry-After).
        """
        try:
            return await self.uploads.receive(body, pace)
        except UploadAbandonedError:
            raise self.shutting_down_error() from None

    def check_options(self, options: TranscribeOptions) -> None:
        """Raise NoModelAllowedError when no allowed model can do what is asked."""
        self.models.plan(
            needs_multilingual=options.needs_multilingual,
            translate=options.task == "translate",
            model=options.model,
        )

    async def accept(
        self,
        reservation: Reservation,
        payload: Payload,
        spec: JobSpec,
        *,
        file_name: str | None = None,
    ) -> Job:
        """Probe an upload (off the event loop) and queue it.

        Raises AudioDecodeError for unusable audio (AudioTooLongError past
        MAX_AUDIO_DURATION_S), NoModelAllowedError for a job no allowed model can
        do, QueueFullError when its bytes exceed MAX_QUEUED_MB, ShuttingDownError
        once the server is shutting down.
        """
        self.metrics.upload_received(spec.surface, len(payload))
        self.check_options(spec.options)
        async with self._probe_slots:
            duration = await asyncio.to_thread(
                probe_upload,
                payload,
                raw_pcm=spec.raw_pcm,
                max_seconds=self.settings.max_audio_duration_s,
            )
            if spec.options.speakers is not None:
                await asyncio.to_thread(check_references, spec.options.speakers)
        if self.shutdown.draining:  # probing took a while: shutdown may have begun meanwhile
            raise self.shutting_down_error()
        job = Job(
            task_type=spec.task_type,
            options=spec.options,
            subtitle_shape=spec.subtitle_shape,
            time_uploaded=self.clock.now(),
            owner=spec.owner,
            client=spec.client,
            surface=spec.surface,
            file_name=file_name,
            upload_bytes=len(payload),
            raw_pcm=spec.raw_pcm,
            audio_duration=duration,
        )
        try:
            await reservation.use(job, payload)
        except QueueFullError as refused:
            raise self._queue_full(refused) from None
        self.accounting.track(job)
        log.info(
            "job_queued",
            task_id=job.id,
            task_type=spec.task_type,
            surface=spec.surface,
            audio_s=round(duration, 2),
            upload_bytes=len(payload),
            position=self.backend.counts().waiting,
        )
        return job

    async def keep_finished(self, spec: JobSpec, transcript: Transcript, *, model: str) -> Job:
        """Store a transcript made elsewhere (a live session) as a finished task of `spec.owner`.

        Nothing is queued: the task exists only to be read, downloaded in every
        format and deleted like any other, and it expires like any other. It is
        refused like an upload (ShuttingDownError, QueueFullError when the queue has
        no room) and counted in /metrics like any finished job.
        """
        if self.shutdown.draining:
            raise self.shutting_down_error()
        counts = self.backend.counts()
        if counts.waiting >= self.backend.max_waiting:
            raise self._queue_full(QueueFullError("jobs"))
        now = self.clock.now()
        job = Job(
            task_type=spec.task_type,
            options=spec.options,
            time_uploaded=now,
            owner=spec.owner,
            surface=spec.surface,
            audio_duration=transcript.duration,
            time_processing_started=now,
            processing_duration=0.0,
            used_model=model,
            used_device=self.models.placement.device,
        )
        job.finish(transcript, now)
        await self.backend.keep(job)
        self.metrics.job_final(
            surface=spec.surface,
            task_type=spec.task_type,
            status="finished",
            audio_seconds=transcript.duration,
            processing_seconds=None,
            model=model,
            device=job.used_device,
        )
        log.info(
            "task_kept",
            task_id=job.id,
            surface=spec.surface,
            segments=len(transcript.segments),
            audio_s=round(transcript.duration, 2),
        )
        return job

    # -- tasks

    async def get(self, task_id: str, *, owner: str | None = None) -> Job | None:
        """A known, unexpired task of `owner`.

        With API keys a task belongs to the key that created it: to any other key
        (or to a caller without one) it is unknown, exactly like a wrong id.
        """
        job = await self.backend.get(task_id, owner=owner)
        if job is not None and self.shutdown.draining and job.is_final:
            self.shutdown.read(job)
        return job

    async def position(self, job: Job) -> int | None:
        """Live queue position: 0 running, 1.. waiting, None when over."""
        return await self.backend.position(job)

    async def delete(self, task_id: str, *, owner: str | None = None) -> bool:
        """Cancel a task of `owner` if it is queued or running, and erase it now."""
        job = await self.get(task_id, owner=owner)
        if job is None:
            return False
        await self.cancel(job, "deleted by its owner")
        await self.backend.delete(task_id)
        log.info("task_deleted", task_id=task_id)
        return True

    async def cancel(self, job: Job, reason: str) -> None:
        """Stop a job (its client went away, or its owner deleted it)."""
        if await self.backend.cancel(job, reason):
            self.accounting.cancelled(job)

    async def forget(self, job: Job) -> None:
        """Erase a synchronous route's job once its answer is sent: nobody can fetch it later."""
        await self.backend.delete(job.id)

    async def wait_until_final(self, job: Job) -> None:
        """Return once `job` is finished or failed."""
        await self.notifier.wait_until_final(job)

    def runnable_models(self) -> list[str]:
        """Models a job may name now: this process's, or (an API node) those the live
        workers of the fleet offer; none while no worker is alive."""
        if self.worker is not None:
            return self.models.allowed_models()
        offered = {name for worker in self.backend.counts().workers for name in worker.models}
        return [name for name in self.models.names_within_cap() if name in offered]

    def status(self) -> ServiceStatus:
        """A snapshot for status routes."""
        running_here = self.worker is not None and self.worker.is_running
        return service_status(
            self.models, self.backend, worker_running=running_here, draining=self.shutdown.draining
        )

    def job_done(self, job: Job) -> None:
        """The worker of this process has finished with `job`: start its expiry clock, count it."""
        self.backend.mark_final(job)
        self.accounting.settle(job)

    # -- metrics

    def render_metrics(self, *, backend_reachable: bool = True) -> bytes:
        """The Prometheus text of this service, every job that has ended counted."""
        self.accounting.settle_all()
        self.metrics.fleet.scraped(
            backend_reachable=backend_reachable, queue_capacity=self.backend.max_waiting
        )
        return self.metrics.render()

    def _metrics_snapshot(self) -> StateSnapshot:
        return metrics_snapshot(self.models, self.backend, draining=self.shutdown.draining)
