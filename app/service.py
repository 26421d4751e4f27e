"""The transcription service: decode, enqueue, run, keep and forget jobs.

Framework-free: every HTTP surface (task API, OpenAI, /asr, UI) goes through the
same `TranscriptionService`, so they share one queue, one model manager and one
store, and the same rules for bad input.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import structlog

from app.config import Settings
from app.store import MemoryTaskStore
from app.transcription.audio import decode_audio, duration_seconds
from app.transcription.models import ModelManager, NoModelAllowedError
from app.transcription.queue import Job, JobQueue, QueueFullError, Worker
from app.transcription.types import TaskType, TranscribeOptions

__all__ = [
    "NoModelAllowedError",
    "QueueFullError",
    "QueueSlot",
    "ServiceStatus",
    "TranscriptionService",
]

log = structlog.get_logger(__name__)

SHUTDOWN_REASON = "the server shut down before this job ran; please upload it again"
DEFAULT_JOB_SECONDS = 10.0
# Uploads decoded at the same time: decoding is CPU-bound and needs a few times the
# upload's size in memory, so many concurrent uploads wait here rather than pile up.
DECODE_CONCURRENCY = max(1, min(4, (os.cpu_count() or 1) // 2))


class QueueSlot:
    """A place in the queue held for one upload while its body is read and decoded.

    Taken before the body is read, so a full queue answers 429 at once instead of
    after reading and decoding an upload it cannot take; the job then goes into
    the held place. Unused places are given back when the `with` block ends.
    """

    def __init__(self, queue: JobQueue) -> None:
        self._queue = queue
        self._held = True

    def take(self, job: Job) -> None:
        """Queue `job` in the held place."""
        if not self._held:
            raise RuntimeError("this queue slot was already used or released")
        self._held = False
        self._queue.submit(job, reserved=True)

    def release(self) -> None:
        """Give the place back if no job took it."""
        if self._held:
            self._held = False
            self._queue.release()


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """What /api/v1/decoder_status and readiness report."""

    worker_running: bool
    loading_model: str | None
    loaded_models: list[str]
    last_loaded_model: str | None
    target_model: str
    max_model: str | None
    device: str
    compute_type: str
    waiting_jobs: int
    running_jobs: int
    max_queue_size: int


class TranscriptionService:
    """Owns the queue, the worker, the model manager and the task store."""

    def __init__(self, settings: Settings, models: ModelManager) -> None:
        self.settings = settings
        self.models = models
        self.queue = JobQueue(settings.max_task_queue_size)
        self.store = MemoryTaskStore(
            ttl_s=settings.delete_results_after_m * 60,
            refresh_on_read=settings.refresh_expiration_time_on_usage,
        )
        self.worker = Worker(
            self.queue, models, on_job_done=self._job_done, time_limit=settings.job_time_limit_s
        )
        self._decode_slots = asyncio.Semaphore(DECODE_CONCURRENCY)
        self._recent_seconds: deque[float] = deque(maxlen=20)
        self._background: list[asyncio.Task[None]] = []

    # -- lifecycle

    async def start(self) -> None:
        """Start the worker, the expiry sweeper and, if configured, the model preload."""
        self.worker.start()
        sweep_every_s = self.settings.run_result_expiry_check_m * 60
        if sweep_every_s > 0:
            self._spawn(self.store.run_sweeper(sweep_every_s), "result-sweeper")
        if self.settings.load_model_on_startup:
            self._spawn(self._preload(), "model-preload")

    async def stop(self) -> None:
        """Fail waiting jobs (RAM only, by design), stop the worker, drop the models."""
        drained = self.queue.drain(SHUTDOWN_REASON)
        if drained:
            log.warning("queued_jobs_failed_on_shutdown", count=drained)
        await self.worker.stop()
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.models.close()

    def _spawn(self, coro: object, name: str) -> None:
        self._background.append(asyncio.get_running_loop().create_task(coro, name=name))  # type: ignore[arg-type]

    async def _preload(self) -> None:
        try:
            await self.models.preload()
        except Exception as exc:  # jobs still try again (and step down) on their own
            log.error("model_preload_failed", error=type(exc).__name__)

    # -- jobs

    def retry_after_s(self) -> int:
        """A fair guess of when a slot frees up, for 429's Retry-After."""
        per_job = (
            statistics.fmean(self._recent_seconds) if self._recent_seconds else DEFAULT_JOB_SECONDS
        )
        return max(1, round(per_job))

    def ensure_capacity(self) -> None:
        """Raise QueueFullError before any decoding work when no slot is free."""
        if not self.queue.has_room():
            raise QueueFullError

    @contextlib.contextmanager
    def reserve_slot(self) -> Iterator[QueueSlot]:
        """Hold a queue place for one upload (QueueFullError when none is free).

        Upload routes take it before reading the body and pass it to `submit`.
        """
        self.ensure_capacity()
        self.queue.reserve()
        slot = QueueSlot(self.queue)
        try:
            yield slot
        finally:
            slot.release()

    def check_options(self, options: TranscribeOptions) -> None:
        """Raise NoModelAllowedError when no allowed model can do what is asked."""
        self.models.plan(
            needs_multilingual=options.needs_multilingual, translate=options.task == "translate"
        )

    async def submit(
        self,
        data: bytes | bytearray | memoryview,
        *,
        task_type: TaskType,
        options: TranscribeOptions,
        file_name: str | None = None,
        owner: str | None = None,
        surface: str = "tasks",
        slot: QueueSlot | None = None,
    ) -> Job:
        """Validate, decode (off the event loop) and enqueue one upload.

        `owner` binds the task to the API key that created it (see `get`). `slot`
        is a place held by `reserve_slot`; without one, a place is held here.

        Raises AudioDecodeError for bad audio (AudioTooLongError past
        MAX_AUDIO_DURATION_S), NoModelAllowedError for a job no allowed model can
        do, QueueFullError when the queue is full.
        """
        if slot is None:
            with self.reserve_slot() as own_slot:
                return await self.submit(
                    data,
                    task_type=task_type,
                    options=options,
                    file_name=file_name,
                    owner=owner,
                    surface=surface,
                    slot=own_slot,
                )
        self.check_options(options)
        async with self._decode_slots:
            audio = await asyncio.to_thread(
                decode_audio, data, max_seconds=self.settings.max_audio_duration_s
            )
        job = Job(
            task_type=task_type,
            options=options,
            audio=audio,
            audio_duration=duration_seconds(audio),
            file_name=file_name,
            owner=owner,
            surface=surface,
        )
        slot.take(job)
        self.store.add(job)
        log.info(
            "job_queued",
            task_id=job.id,
            task_type=task_type,
            audio_s=round(job.audio_duration, 2),
            upload_bytes=len(data),
            position=self.queue.waiting,
        )
        return job

    def get(self, task_id: str, *, owner: str | None = None) -> Job | None:
        """A known, unexpired task of `owner`.

        With API keys a task belongs to the key that created it: to any other key
        (or to a caller without one) it is unknown, exactly like a wrong id.
        """
        job = self.store.get(task_id)
        if job is None or job.owner != owner:
            return None
        return job

    def position(self, job: Job) -> int | None:
        """Live queue position: 0 running, 1.. waiting, None when over."""
        return self.queue.position(job)

    def delete(self, task_id: str, *, owner: str | None = None) -> bool:
        """Cancel a task of `owner` if it is queued or running, and erase it now."""
        job = self.get(task_id, owner=owner)
        if job is None:
            return False
        self.queue.cancel(job, "deleted by its owner")
        self.store.delete(task_id)
        log.info("task_deleted", task_id=task_id)
        return True

    def cancel(self, job: Job, reason: str) -> None:
        """Stop a job whose client went away (synchronous routes)."""
        self.queue.cancel(job, reason)

    def status(self) -> ServiceStatus:
        """A snapshot for status routes."""
        return ServiceStatus(
            worker_running=self.worker.is_running,
            loading_model=self.models.loading,
            loaded_models=self.models.loaded_models,
            last_loaded_model=self.models.last_loaded,
            target_model=self.models.target,
            max_model=self.models.cap,
            device=self.models.placement.device,
            compute_type=self.models.placement.compute_type,
            waiting_jobs=self.queue.waiting,
            running_jobs=len(self.queue.running),
            max_queue_size=self.queue.max_waiting,
        )

    def _job_done(self, job: Job) -> None:
        self.store.mark_final(job)
        if job.processing_duration is not None and job.transcript is not None:
            self._recent_seconds.append(job.processing_duration)
