"""Jobs, the bounded FIFO they wait in, and the worker that runs them.

The queue only knows "the next job", so a batching worker can later ask for
several at once; a Redis-backed queue can replace `JobQueue` behind the same
methods. Inference runs in a dedicated thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import enum
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import msgspec
import numpy as np
import numpy.typing as npt
import structlog

from app.transcription.batching import is_batchable
from app.transcription.engine import JobCancelledError
from app.transcription.models import ModelLease, ModelUnavailableError, NoModelAllowedError
from app.transcription.speakers.embedders import SpeakerModelError
from app.transcription.types import (
    LanguageDetection,
    Segment,
    SpeakerOptions,
    SubtitleShape,
    TaskType,
    TranscribeOptions,
    Transcript,
)

__all__ = [
    "Job",
    "JobQueue",
    "JobStatus",
    "ModelProvider",
    "QueueFullError",
    "Worker",
    "batch_key",
]

log = structlog.get_logger(__name__)


class JobStatus(enum.StrEnum):
    """The seed's four task states."""

    PENDING = "pending"
    PROCESSING = "processing"
    FINISHED = "finished"
    FAILED = "failed"


FINAL_STATES = frozenset({JobStatus.FINISHED, JobStatus.FAILED})
STOPPED_REASON = "the server shut down while this job ran; please upload it again"
# How long past its time limit a job's inference thread may take to notice it must
# stop (it checks between segments) before the worker gives up on that thread.
WATCHDOG_GRACE_S = 60.0
# Peak amplitude below which audio is digital silence (about -100 dBFS): there is
# nothing to transcribe, and Whisper tends to invent text for such input.
SILENCE_PEAK = 1e-5

TimeLimit = Callable[[float], float]
# The speaker stage (app.transcription.speaker_stage.SpeakerStage): blocking, run in the
# inference thread after transcription for jobs with options.speakers.
SpeakerStageCall = Callable[[npt.NDArray[np.float32], Transcript, SpeakerOptions], Transcript]
"""Seconds a job may decode, given its audio's length in seconds."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class Job:
    """One upload's life, from queued to finished or failed; lives in RAM only."""

    task_type: TaskType
    options: TranscribeOptions
    audio: npt.NDArray[np.float32] | None
    audio_duration: float
    file_name: str | None = None
    owner: str | None = None
    surface: str = "tasks"
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: JobStatus = JobStatus.PENDING
    time_uploaded: datetime = field(default_factory=_now)
    time_processing_started: datetime | None = None
    time_processing_finished: datetime | None = None
    processing_duration: float | None = None
    progress: float = 0.0
    transcript: Transcript | None = None
    # Segments as they are decoded, for streaming clients; the transcript has them all at the end.
    partial_segments: list[Segment] = field(default_factory=list)
    detection: LanguageDetection | None = None
    # How subtitles of this task are cut unless the result request says otherwise.
    subtitle_shape: SubtitleShape = field(default_factory=SubtitleShape)
    error: str | None = None
    target_model: str | None = None
    used_model: str | None = None
    used_device: str | None = None
    expires_at: float | None = None  # time.monotonic() deadline once final
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str | None = None
    timed_out: bool = False
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def is_final(self) -> bool:
        """Finished or failed: nothing will change any more."""
        return self.status in FINAL_STATES

    def notify(self) -> None:
        """Wake everyone waiting for a change of this job (SSE streams, sync routes)."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        if self.is_final:
            self._done.set()

    def change_token(self) -> asyncio.Event:
        """The event the next change will set; take it before reading the job's state."""
        return self._changed

    @staticmethod
    async def wait_for_change(token: asyncio.Event, max_wait_s: float | None = None) -> bool:
        """Wait until `token` is set (a change since it was taken): True, or False on timeout."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max_wait_s):
                await token.wait()
        return token.is_set()

    async def wait_until_final(self) -> None:
        """Return once the job is finished or failed."""
        await self._done.wait()

    def fail(self, reason: str) -> None:
        """Mark the job failed with a reason people can read; drops its audio."""
        self.status = JobStatus.FAILED
        self.error = reason
        self.audio = None
        self.time_processing_finished = _now()
        self.notify()


class QueueFullError(Exception):
    """The queue holds MAX_TASK_QUEUE_SIZE waiting jobs already."""


class JobQueue:
    """A FIFO of waiting jobs with a hard bound; it also knows the running job."""

    def __init__(self, max_waiting: int) -> None:
        self.max_waiting = max_waiting
        self._waiting: collections.deque[Job] = collections.deque()
        self._running: list[Job] = []
        self._reserved = 0
        self._available = asyncio.Event()

    @property
    def waiting(self) -> int:
        """Number of jobs not yet started."""
        return len(self._waiting)

    @property
    def running(self) -> list[Job]:
        """Jobs being decoded now."""
        return list(self._running)

    @property
    def reserved(self) -> int:
        """Places held for uploads still being read or decoded."""
        return self._reserved

    def has_room(self) -> bool:
        """Whether one more job would be accepted now (reserved places count as taken)."""
        return len(self._waiting) + self._reserved < self.max_waiting

    def reserve(self) -> None:
        """Hold a place for an upload before its body is read; QueueFullError if none."""
        if not self.has_room():
            raise QueueFullError
        self._reserved += 1

    def release(self) -> None:
        """Give back a place held by `reserve` that was not used."""
        self._reserved = max(0, self._reserved - 1)

    def submit(self, job: Job, *, reserved: bool = False) -> None:
        """Append `job` (into a place held by `reserve` if `reserved`).

        Without a reservation, raise QueueFullError at once when the bound is reached.
        """
        if reserved:
            self.release()
        elif not self.has_room():
            raise QueueFullError
        self._waiting.append(job)
        self._available.set()

    def position(self, job: Job) -> int | None:
        """0 while running, 1.. while waiting, None once it has left the queue."""
        if job in self._running:
            return 0
        try:
            return self._waiting.index(job) + 1
        except ValueError:
            return None

    async def next_job(self) -> Job:
        """Wait for the oldest waiting job and mark it running."""
        return (await self.next_batch(1, lambda job: None))[0]

    async def next_batch(self, max_size: int, key: Callable[[Job], object]) -> list[Job]:
        """Wait for the oldest job, then add later waiting jobs with the same non-None key.

        The oldest job always goes first, so no job waits behind more than one
        batch of later arrivals; jobs that cannot join keep their place.
        """
        while not self._waiting:
            self._available.clear()
            await self._available.wait()
        head = self._waiting.popleft()
        self._running.append(head)
        batch = [head]
        self.top_up(batch, max_size, key)
        for other in self._waiting:
            other.notify()  # everyone behind moved up
        return batch

    def top_up(self, batch: list[Job], max_size: int, key: Callable[[Job], object]) -> None:
        """Move waiting jobs with the batch head's key into `batch`, up to `max_size`."""
        head_key = key(batch[0])
        if head_key is None:
            return
        joined: list[Job] = []
        for job in self._waiting:
            if len(batch) + len(joined) >= max_size:
                break
            if key(job) == head_key:
                joined.append(job)
        for job in joined:
            self._waiting.remove(job)
            self._running.append(job)
        batch.extend(joined)
        if joined:
            for other in self._waiting:
                other.notify()

    def done(self, job: Job) -> None:
        """The worker has finished with `job`."""
        if job in self._running:
            self._running.remove(job)

    def cancel(self, job: Job, reason: str) -> bool:
        """Cancel a waiting job at once, or ask a running one to stop; False if already over."""
        if job in self._waiting:
            self._waiting.remove(job)
            job.fail(reason)
            for other in self._waiting:
                other.notify()
            return True
        if job in self._running:
            job.cancel_reason = reason
            job.cancel_requested.set()
            return True
        return False

    def drain(self, reason: str) -> int:
        """Fail every waiting job (shutdown); returns how many."""
        count = 0
        while self._waiting:
            self._waiting.popleft().fail(reason)
            count += 1
        return count


def batch_key(job: Job) -> object:
    """Jobs with equal keys can share one batched pass; None means "decode alone"."""
    options = job.options
    if not is_batchable(job.audio_duration, options):
        return None
    return (options.needs_multilingual, options.task == "translate", options.model)


class ModelProvider(Protocol):
    """The part of ModelManager the worker uses."""

    def acquire(
        self, *, needs_multilingual: bool, translate: bool = False, model: str | None = None
    ) -> contextlib.AbstractAsyncContextManager[ModelLease]:
        """Hold a model for one job."""
        ...


class Worker:
    """Takes jobs from the queue one at a time and runs them in an inference thread."""

    def __init__(
        self,
        queue: JobQueue,
        models: ModelProvider,
        *,
        on_job_done: Callable[[Job], None] | None = None,
        batch_size: int = 1,
        arrivals: Callable[[], int] = lambda: 0,
        max_linger_s: float = 0.5,
        time_limit: TimeLimit | None = None,
        watchdog_grace_s: float = WATCHDOG_GRACE_S,
        speaker_stage: SpeakerStageCall | None = None,
    ) -> None:
        self._queue = queue
        self._models = models
        self._on_job_done = on_job_done
        self._batch_size = max(1, batch_size)
        self._arrivals = arrivals
        self._max_linger_s = max_linger_s
        self._time_limit = time_limit
        self._watchdog_grace_s = watchdog_grace_s
        self._speaker_stage = speaker_stage
        self._executor = _inference_executor()
        self._task: asyncio.Task[None] | None = None

    @property
    def is_running(self) -> bool:
        """Whether the worker loop is alive."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the worker loop on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="whisper-worker")

    async def stop(self) -> None:
        """Stop taking jobs, ask the running one to stop, and return without waiting on it."""
        for job in self._queue.running:
            job.cancel_reason = job.cancel_reason or STOPPED_REASON
            job.cancel_requested.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self) -> None:
        while True:
            jobs = await self._queue.next_batch(self._batch_size, batch_key)
            await self._gather_arrivals(jobs)
            try:
                await self.process_batch(jobs)
            finally:
                for job in jobs:
                    self._queue.done(job)
                    if self._on_job_done is not None:
                        self._on_job_done(job)

    async def _gather_arrivals(self, jobs: list[Job]) -> None:
        """While uploads are still being received, wait briefly so they can join the batch.

        Clients that send at the same moment land a few milliseconds apart (each
        upload is parsed and decoded first); without this the first one would run
        alone. A lone request has no uploads in flight and never waits.
        """
        if self._batch_size < 2 or batch_key(jobs[0]) is None:
            return
        deadline = time.monotonic() + self._max_linger_s
        while len(jobs) < self._batch_size and self._arrivals() > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            self._queue.top_up(jobs, self._batch_size, batch_key)

    async def process(self, job: Job) -> None:
        """Run one job to its final state; never raises for a job's own failure."""
        await self.process_batch([job])

    async def process_batch(self, jobs: list[Job]) -> None:
        """Run jobs that share a model to their final states, batched where possible."""
        live = [job for job in jobs if not self._cancelled_before_start(job)]
        if not live:
            return
        started = time.monotonic()
        for job in live:
            job.status = JobStatus.PROCESSING
            job.time_processing_started = _now()
            job.notify()
        try:
            async with self._models.acquire(
                needs_multilingual=live[0].options.needs_multilingual,
                translate=live[0].options.task == "translate",
                model=live[0].options.model,
            ) as lease:
                for job in live:
                    job.target_model, job.used_model = lease.target, lease.name
                    job.used_device = lease.device
                    job.notify()
                results = await self._decode_together(live, lease)
                for job, result in zip(live, results, strict=True):
                    await self._settle(job, lease, result, started)
        except asyncio.CancelledError:
            # The worker is stopping: nobody waiting on these jobs may hang.
            for job in live:
                self._end(job, None, job.cancel_reason or STOPPED_REASON, started)
            raise
        except (ModelUnavailableError, NoModelAllowedError) as exc:
            log.error("job_failed", count=len(live), reason="model_unavailable")
            for job in live:
                self._end(job, None, f"no model available: {exc}", started)

    def _cancelled_before_start(self, job: Job) -> bool:
        if job.cancel_requested.is_set():
            job.fail(job.cancel_reason or "cancelled")
            return True
        return False

    async def _decode_together(self, jobs: list[Job], lease: ModelLease) -> list[Transcript | None]:
        """One batched pass over several short jobs; None for each job left to decode alone."""
        batch = getattr(lease.transcriber, "decode_batch", None)
        audios = [job.audio for job in jobs]
        if len(jobs) < 2 or batch is None or any(audio is None for audio in audios):
            return [None] * len(jobs)
        loop = asyncio.get_running_loop()
        began = time.monotonic()
        try:
            results: list[Transcript | None] = await loop.run_in_executor(
                self._executor, batch, audios, [job.options for job in jobs]
            )
        except Exception as exc:  # decode each job alone instead
            log.warning("batch_failed", count=len(jobs), error=type(exc).__name__)
            return [None] * len(jobs)
        log.info(
            "batch_decoded",
            count=len(jobs),
            kept=sum(result is not None for result in results),
            seconds=round(time.monotonic() - began, 3),
        )
        return results

    async def _settle(
        self, job: Job, lease: ModelLease, batched: Transcript | None, started: float
    ) -> None:
        """Finish one job from its batched result, or decode it alone."""
        if job.cancel_requested.is_set():
            self._end(job, None, job.cancel_reason or "cancelled", started)
            return
        result: Transcript | LanguageDetection | None = None
        reason: str | None = None
        try:
            result = await self._result(job, lease, batched)
        except SpeakerModelError as exc:
            reason = f"speaker labels failed: {exc}"
            log.error("speaker_stage_failed", task_id=job.id, reason=type(exc).__name__)
        except JobCancelledError:
            reason = job.cancel_reason or "cancelled"
            log.info("job_cancelled", task_id=job.id, timed_out=job.timed_out)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = f"transcription failed: {type(exc).__name__}"
            log.exception("job_failed", task_id=job.id, reason=type(exc).__name__)
        self._end(job, result, reason, started)

    async def _result(
        self, job: Job, lease: ModelLease, batched: Transcript | None
    ) -> Transcript | LanguageDetection:
        """The batched transcript or the job decoded alone, then speaker labels if asked."""
        if job.options.task == "detect":
            return await self._detect(job, lease)
        transcript = batched if batched is not None else await self._transcribe(job, lease)
        if job.options.speakers is not None:
            transcript = await self._label_speakers(job, transcript)
        return transcript

    @staticmethod
    def _end(
        job: Job,
        result: Transcript | LanguageDetection | None,
        reason: str | None,
        started: float,
    ) -> None:
        """Put a job in its final state (once) and log it."""
        if job.is_final:
            return
        job.processing_duration = time.monotonic() - started
        if result is None:
            job.fail(reason or "transcription failed")
            return
        if isinstance(result, LanguageDetection):
            job.detection = result
        else:
            job.transcript = result
        job.status = JobStatus.FINISHED
        job.progress = 1.0
        job.audio = None
        job.time_processing_finished = _now()
        job.notify()
        log.info(
            "job_finished",
            task_id=job.id,
            audio_s=round(job.audio_duration, 2),
            processing_s=round(job.processing_duration, 3),
            task_type=job.task_type,
            language=result.language,
            segment_count=len(result.segments) if isinstance(result, Transcript) else 0,
            model=job.used_model,
        )

    async def _label_speakers(self, job: Job, transcript: Transcript) -> Transcript:
        """Run the speaker stage in the inference thread, then forget the reference clips."""
        speakers, audio = job.options.speakers, job.audio
        if speakers is None or audio is None:
            return transcript
        if self._speaker_stage is None:
            raise SpeakerModelError("this server runs without speaker labels")
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, self._speaker_stage, audio, transcript, speakers
            )
        finally:
            job.options = msgspec.structs.replace(
                job.options,
                speakers=msgspec.structs.replace(speakers, known_speaker_references=()),
            )

    async def _detect(self, job: Job, lease: ModelLease) -> LanguageDetection:
        audio = job.audio
        if audio is None:
            raise JobCancelledError
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, lease.transcriber.detect_language, audio, job.cancel_requested.is_set
        )

    async def _transcribe(self, job: Job, lease: ModelLease) -> Transcript:
        """Run the model in the inference thread, within the job's time limit.

        The limit is enforced twice: the engine asks `should_stop` between segments
        and stops once the deadline has passed; should it not get there (one segment
        hanging), the watchdog fails the job `watchdog_grace_s` later and gives the
        worker a fresh inference thread, so the next job runs either way.
        """
        loop = asyncio.get_running_loop()
        audio = job.audio
        if audio is None:
            raise JobCancelledError
        if await asyncio.to_thread(is_digital_silence, audio):
            return silent_transcript(job)
        limit_s = self._time_limit(job.audio_duration) if self._time_limit else None
        deadline = None if limit_s is None else time.monotonic() + limit_s

        def report(fraction: float) -> None:
            loop.call_soon_threadsafe(self._set_progress, job, fraction)

        def decoded(segment: Segment) -> None:
            loop.call_soon_threadsafe(self._add_segment, job, segment)

        def should_stop() -> bool:
            if deadline is not None and time.monotonic() > deadline and limit_s is not None:
                _time_out(job, limit_s)
            return job.cancel_requested.is_set()

        future = loop.run_in_executor(
            self._executor,
            lease.transcriber.transcribe,
            audio,
            job.options,
            report,
            should_stop,
            decoded,
        )
        if limit_s is None:
            return await future
        try:
            async with asyncio.timeout(limit_s + self._watchdog_grace_s):
                return await asyncio.shield(future)
        except TimeoutError:
            _time_out(job, limit_s)
            self._abandon_inference_thread(future)
            raise JobCancelledError from None

    def _abandon_inference_thread(self, future: asyncio.Future[Transcript]) -> None:
        """Leave a stuck inference call behind (it stops at its next segment) and go on."""
        future.add_done_callback(_ignore_outcome)
        self._executor.shutdown(wait=False)
        self._executor = _inference_executor()
        log.error("inference_thread_abandoned")

    @staticmethod
    def _set_progress(job: Job, fraction: float) -> None:
        if job.status is JobStatus.PROCESSING and fraction > job.progress:
            job.progress = fraction
            job.notify()

    @staticmethod
    def _add_segment(job: Job, segment: Segment) -> None:
        if job.status is JobStatus.PROCESSING:
            job.partial_segments.append(segment)
            job.notify()


def _inference_executor() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")


def _time_out(job: Job, limit_s: float) -> None:
    """Ask a job to stop because it ran past its time limit (callable from any thread)."""
    if job.cancel_requested.is_set():
        return
    job.timed_out = True
    job.cancel_reason = (
        f"the job took longer than its time limit of {limit_s:.1f} s and was stopped "
        "(the limit grows with the audio's length; see JOB_TIMEOUT_MIN_S and JOB_TIMEOUT_FACTOR)"
    )
    job.cancel_requested.set()


def _ignore_outcome(future: asyncio.Future[Transcript]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not report it as never retrieved


def is_digital_silence(audio: npt.NDArray[np.float32]) -> bool:
    """Whether the samples are (practically) all zero."""
    # max and -min instead of abs(): no temporary copy of hours of samples.
    return audio.size == 0 or max(float(audio.max()), -float(audio.min())) < SILENCE_PEAK


def silent_transcript(job: Job) -> Transcript:
    """The correct result for digital silence: no text, no segments, without running a model.

    There is no speech to detect a language from: the requested language, else
    English, is reported with probability 0.
    """
    return Transcript(
        text="",
        language=job.options.language or "en",
        language_probability=0.0,
        duration=job.audio_duration,
        segments=[],
    )
