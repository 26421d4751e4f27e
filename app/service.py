"""The transcription service: decode, enqueue, run, keep and forget jobs.

Framework-free: every HTTP surface (task API, OpenAI, /asr, UI) goes through the
same `TranscriptionService`, so they share one queue, one model manager and one
store, and the same rules for bad input.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import statistics
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog

from app.config import Settings
from app.metrics import FinalStatus, ServiceMetrics, StateSnapshot
from app.store import MemoryTaskStore
from app.transcription.audio import (
    AudioDecodeError,
    AudioTooLongError,
    decode_audio,
    decode_pcm_s16le,
    duration_seconds,
)
from app.transcription.models import ModelManager, NoModelAllowedError
from app.transcription.queue import Job, JobQueue, JobStatus, QueueFullError, Worker
from app.transcription.speaker_stage import SpeakerStage
from app.transcription.types import SubtitleShape, TaskType, TranscribeOptions

__all__ = [
    "NoModelAllowedError",
    "QueueFullError",
    "QueueSlot",
    "ServiceStatus",
    "ShuttingDownError",
    "TranscriptionService",
]

log = structlog.get_logger(__name__)

SHUTDOWN_REASON = (
    "the server shut down before this job ran (waiting jobs are kept in memory only); "
    "please upload it again"
)
DEFAULT_JOB_SECONDS = 10.0
# Below two windows the batched VAD pipeline has little to batch.
LONG_FORM_MIN_S = 60.0
# While shutting down, how long a job that has just finished waits for its client
# to fetch it (clients that poll once a second, or the UI after its event stream).
RESULT_PICKUP_S = 5.0
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
    draining: bool = False


class ShuttingDownError(Exception):
    """The server is shutting down and takes no new jobs."""


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
            self.queue,
            models,
            on_job_done=self._job_done,
            batch_size=settings.batch_size,
            # Uploads holding a queue place are still being read or decoded: worth waiting for.
            arrivals=lambda: self.queue.reserved,
            time_limit=settings.job_time_limit_s,
            speaker_stage=SpeakerStage(settings.speaker_model),
        )
        self._decode_slots = asyncio.Semaphore(DECODE_CONCURRENCY)
        self._recent_seconds: deque[float] = deque(maxlen=20)
        self._background: list[asyncio.Task[None]] = []
        self._draining = False
        self._drain_started = False
        self._drain_deadline: float | None = None
        self._read_while_draining: set[str] = set()
        # Jobs not yet counted in the metrics, and those their client cancelled.
        self._unsettled: dict[str, Job] = {}
        self._cancelled: set[str] = set()
        self.metrics = ServiceMetrics(self._metrics_snapshot)

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
        """Drain (see `drain`), stop the worker, drop the models.

        A job still running when SHUTDOWN_GRACE_S has passed is stopped and fails.
        """
        await self.drain()
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

    # -- shutting down

    @property
    def is_draining(self) -> bool:
        """Whether the service is shutting down (readiness is 503, uploads are refused)."""
        return self._draining

    def begin_draining(self) -> None:
        """Refuse new uploads from now on and start the grace period.

        Only sets attributes, so a signal handler may call it.
        """
        if self._drain_deadline is None:
            self._drain_deadline = time.monotonic() + self.settings.shutdown_grace_s
        self._draining = True

    def end_grace(self) -> None:
        """Give running jobs no more time: the next `drain`/`stop` stops them.

        Only sets attributes, so a signal handler may call it.
        """
        self._draining = True
        self._drain_deadline = time.monotonic()

    def drain_retry_after_s(self) -> int:
        """Retry-After while shutting down: about when a restarted server could answer."""
        return max(1, math.ceil(self.settings.shutdown_grace_s))

    def refusal(self, reason: QueueFullError | ShuttingDownError) -> tuple[str, int]:
        """The message and Retry-After seconds every surface sends for a refused upload."""
        if isinstance(reason, ShuttingDownError):
            retry_after = self.drain_retry_after_s()
            return (
                "the server is shutting down and accepts no new uploads; "
                f"try again in about {retry_after} s",
                retry_after,
            )
        retry_after = self.retry_after_s()
        return (
            f"the queue is full ({self.queue.max_waiting} waiting jobs); "
            f"try again in about {retry_after} s",
            retry_after,
        )

    async def drain(self, *, pickup: bool = False) -> None:
        """Refuse uploads, fail waiting jobs, and let running jobs finish within the grace.

        Waiting jobs live in RAM only, by design: they fail at once with a reason
        that asks to upload again, so their clients learn it now rather than
        at the end of the grace period. With `pickup` (the server still listens),
        a job that finished meanwhile waits a little for its client to fetch it.
        Safe to call more than once.
        """
        first, self._drain_started = not self._drain_started, True
        self.begin_draining()
        failed = self.queue.drain(SHUTDOWN_REASON)
        self._settle_final_jobs()
        running = [job for job in self.queue.running if not job.is_final]
        if first or failed:
            # A warning only when the shutdown touches jobs; an idle stop is routine.
            (log.warning if failed or running else log.info)(
                "shutdown_draining",
                queued_jobs_failed=failed,
                running_jobs=len(running),
                grace_s=self.settings.shutdown_grace_s,
            )
        if not running:
            return
        await self._wait_for_running(running)
        if pickup:
            await self._wait_for_pickup([j for j in running if j.status is JobStatus.FINISHED])

    def _grace_left_s(self) -> float:
        assert self._drain_deadline is not None  # set by begin_draining
        return max(0.0, self._drain_deadline - time.monotonic())

    async def _wait_for_running(self, running: list[Job]) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._grace_left_s()):
                await asyncio.gather(*(job.wait_until_final() for job in running))
        left = sum(1 for job in running if not job.is_final)
        if left:
            log.warning("shutdown_grace_expired", running_jobs=left)
            return
        finished = sum(1 for job in running if job.status is JobStatus.FINISHED)
        log.info("shutdown_running_jobs_ended", finished=finished, failed=len(running) - finished)

    async def _wait_for_pickup(self, finished: list[Job]) -> None:
        """Keep answering a little longer, until the jobs that just finished were read.

        A client polling the task API (or the UI, after its event stream says
        "finished") needs one more request to get the result; without this pause
        the server would be gone by then. Ends early once every such job has been
        read, and never runs past the grace period.
        """
        until = time.monotonic() + min(RESULT_PICKUP_S, self._grace_left_s())
        while any(job.id not in self._read_while_draining for job in finished):
            if time.monotonic() >= until:
                return
            await asyncio.sleep(0.05)

    # -- jobs

    def retry_after_s(self) -> int:
        """A fair guess of when a slot frees up, for 429's Retry-After."""
        per_job = (
            statistics.fmean(self._recent_seconds) if self._recent_seconds else DEFAULT_JOB_SECONDS
        )
        return max(1, round(per_job))

    def _refuse_if_draining(self) -> None:
        if self._draining:
            self.metrics.upload_rejected("shutting_down")
            raise ShuttingDownError

    def _decode(self, data: bytes | bytearray | memoryview, raw_pcm: bool) -> Any:
        """Decode a file, or take raw 16 kHz PCM, within MAX_AUDIO_DURATION_S (blocking)."""
        limit_s = self.settings.max_audio_duration_s
        if not raw_pcm:
            return decode_audio(data, max_seconds=limit_s)
        audio = decode_pcm_s16le(data)
        if duration_seconds(audio) > limit_s:
            raise AudioTooLongError(limit_s)
        return audio

    def ensure_capacity(self) -> None:
        """Raise before any decoding work: ShuttingDownError, or QueueFullError without a slot."""
        self._refuse_if_draining()
        if not self.queue.has_room():
            self.metrics.upload_rejected("queue_full")
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
        try:
            self.models.plan(
                needs_multilingual=options.needs_multilingual,
                translate=options.task == "translate",
                model=options.model,
            )
        except NoModelAllowedError:
            self.metrics.upload_rejected("no_model")
            raise

    async def submit(
        self,
        data: bytes | bytearray | memoryview,
        *,
        task_type: TaskType,
        options: TranscribeOptions,
        file_name: str | None = None,
        owner: str | None = None,
        surface: str = "tasks",
        subtitle_shape: SubtitleShape | None = None,
        raw_pcm: bool = False,
        slot: QueueSlot | None = None,
    ) -> Job:
        """Validate, decode (off the event loop) and enqueue one upload.

        `raw_pcm` takes the bytes as 16 kHz mono s16le samples instead of a file.
        `owner` binds the task to the API key that created it (see `get`). `slot`
        is a place held by `reserve_slot`; without one, a place is held here.

        Raises AudioDecodeError for bad audio (AudioTooLongError past
        MAX_AUDIO_DURATION_S), NoModelAllowedError for a job no allowed model can
        do, QueueFullError when the queue is full, ShuttingDownError once the
        server is shutting down.
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
                    subtitle_shape=subtitle_shape,
                    raw_pcm=raw_pcm,
                    slot=own_slot,
                )
        self.metrics.upload_received(surface, len(data))
        self.check_options(options)
        async with self._decode_slots:
            try:
                audio = await asyncio.to_thread(self._decode, data, raw_pcm)
            except AudioDecodeError:
                self.metrics.upload_rejected("bad_audio")
                raise
        duration = duration_seconds(audio)
        self._refuse_if_draining()  # decoding took a while: shutdown may have begun meanwhile
        job = Job(
            task_type=task_type,
            options=self._with_long_form_batching(options, duration),
            audio=audio,
            audio_duration=duration,
            file_name=file_name,
            owner=owner,
            surface=surface,
            subtitle_shape=subtitle_shape or SubtitleShape(),
        )
        slot.take(job)
        self.store.add(job)
        self._unsettled[job.id] = job
        log.info(
            "job_queued",
            task_id=job.id,
            task_type=task_type,
            audio_s=round(job.audio_duration, 2),
            upload_bytes=len(data),
            position=self.queue.waiting,
        )
        return job

    def _with_long_form_batching(
        self, options: TranscribeOptions, duration_s: float
    ) -> TranscribeOptions:
        """BATCHED_INFERENCE: on = always; auto = audio longer than one window twice over."""
        mode = self.settings.batched_inference
        use = mode == "on" or (mode == "auto" and duration_s > LONG_FORM_MIN_S)
        if not use or self.settings.batch_size < 2:
            return options
        return msgspec.structs.replace(options, long_form_batch_size=self.settings.batch_size)

    def get(self, task_id: str, *, owner: str | None = None) -> Job | None:
        """A known, unexpired task of `owner`.

        With API keys a task belongs to the key that created it: to any other key
        (or to a caller without one) it is unknown, exactly like a wrong id.
        """
        job = self.store.get(task_id)
        if job is None or job.owner != owner:
            return None
        if self._draining and job is not None and job.is_final:
            self._read_while_draining.add(job.id)
        return job

    def position(self, job: Job) -> int | None:
        """Live queue position: 0 running, 1.. waiting, None when over."""
        return self.queue.position(job)

    def delete(self, task_id: str, *, owner: str | None = None) -> bool:
        """Cancel a task of `owner` if it is queued or running, and erase it now."""
        job = self.get(task_id, owner=owner)
        if job is None:
            return False
        self.cancel(job, "deleted by its owner")
        self.store.delete(task_id)
        log.info("task_deleted", task_id=task_id)
        return True

    def cancel(self, job: Job, reason: str) -> None:
        """Stop a job whose client went away (synchronous routes)."""
        if self.queue.cancel(job, reason):
            self._cancelled.add(job.id)
            self._settle(job)  # a waiting job is final now; a running one when the worker is done

    def forget(self, job: Job) -> None:
        """Erase a synchronous route's job once its answer is sent: nobody can fetch it later."""
        self.store.delete(job.id)

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
            draining=self._draining,
        )

    def _job_done(self, job: Job) -> None:
        self.store.mark_final(job)
        if job.processing_duration is not None and job.transcript is not None:
            self._recent_seconds.append(job.processing_duration)
        self._settle(job)

    # -- metrics

    def _settle(self, job: Job) -> None:
        """Count a job in the metrics once, when it has reached its final status."""
        if not job.is_final or self._unsettled.pop(job.id, None) is None:
            return
        status: FinalStatus = "failed"
        if job.status is JobStatus.FINISHED:
            status = "finished"
        elif job.id in self._cancelled:
            status = "cancelled"
        self._cancelled.discard(job.id)
        self.metrics.job_final(
            surface=job.surface,
            task_type=job.task_type,
            status=status,
            audio_seconds=job.audio_duration,
            processing_seconds=job.processing_duration,
            model=job.used_model,
            device=job.used_device,
        )

    def render_metrics(self) -> bytes:
        """The Prometheus text of this service, every job that has ended counted."""
        self._settle_final_jobs()
        return self.metrics.render()

    def _settle_final_jobs(self) -> None:
        for job in list(self._unsettled.values()):
            self._settle(job)

    def _metrics_snapshot(self) -> StateSnapshot:
        return StateSnapshot(
            queue_depth=self.queue.waiting,
            running_jobs=len(self.queue.running),
            draining=self._draining,
            device=self.models.placement.device,
            loaded_models=self.models.loaded_models,
            load_seconds=dict(self.models.load_seconds),
            loading_model=self.models.loading,
        )
