"""The worker: takes batches of jobs from a `JobSource`, decodes their uploads, runs the model.

Decoding happens here, when a job's turn comes, so waiting jobs hold only the
bytes that were uploaded. Inference runs in a dedicated thread, never on the
event loop; decoding in another, so the loop stays free for HTTP. One failing
job never stops the worker.

One job's whole life on the worker (decode, model, batch, time limit, speaker
stage, final state) reads in this module; the pure rules it applies are in
`limits.py`, the speaker stage in `speakers/stage.py`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

import msgspec
import numpy as np
import numpy.typing as npt
import structlog

from app.clock import Clock
from app.transcription.audio import AudioDecodeError, decode_upload, duration_seconds
from app.transcription.batching import is_batchable
from app.transcription.engine import JobCancelledError
from app.transcription.inference import InferenceExecutor
from app.transcription.jobs import Job, JobNotifier, JobSource, JobStage, JobStatus, QueuedJob
from app.transcription.limits import (
    WorkerLimits,
    is_digital_silence,
    silent_transcript,
    time_out,
)
from app.transcription.models import ModelLease, ModelUnavailableError, NoModelAllowedError
from app.transcription.progress import Estimate, ProgressTicker
from app.transcription.speakers.embedders import SpeakerModelError
from app.transcription.types import LanguageDetection, Segment, SpeakerOptions, Transcript

__all__ = ["ModelProvider", "Worker", "WorkerLimits", "batch_key"]

log = structlog.get_logger(__name__)

Audio = npt.NDArray[np.float32]
STOPPED_REASON = "the server shut down while this job ran; please upload it again"
# The speaker stage (app.transcription.speakers.stage.SpeakerStage): blocking, run in the
# inference thread after the transcription of jobs whose options ask for speakers.
SpeakerStageCall = Callable[[Audio, Transcript, SpeakerOptions], Transcript]


class ModelProvider(Protocol):
    """The part of ModelManager the worker uses."""

    def acquire(
        self, *, needs_multilingual: bool, translate: bool = False, model: str | None = None
    ) -> contextlib.AbstractAsyncContextManager[ModelLease]:
        """Hold a model for one job."""
        ...


def batch_key(job: Job) -> object:
    """Jobs with equal keys can share one batched pass; None means "decode alone"."""
    options = job.options
    if not is_batchable(job.audio_duration, options):
        return None
    return (options.needs_multilingual, options.task == "translate", options.model)


class Worker:
    """Takes batches of jobs from the queue and runs them to their final state."""

    def __init__(
        self,
        queue: JobSource,
        models: ModelProvider,
        *,
        notifier: JobNotifier,
        clock: Clock,
        limits: WorkerLimits | None = None,
        on_job_done: Callable[[Job], None] | None = None,
        speaker_stage: SpeakerStageCall | None = None,
    ) -> None:
        self._queue = queue
        self._models = models
        self._notifier = notifier
        self._clock = clock
        self._limits = limits or WorkerLimits()
        self.on_job_done = on_job_done
        self._speaker_stage = speaker_stage
        self._executor: InferenceExecutor | None = None
        # Threads left behind by a stuck call: they still count as busy at exit.
        self._abandoned: list[InferenceExecutor] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def inference_busy(self) -> bool:
        """Whether a model call still runs (after `stop`: one whose result nobody wants)."""
        executors = [*self._abandoned, *([self._executor] if self._executor else [])]
        return any(executor.busy for executor in executors)

    @property
    def is_running(self) -> bool:
        """Whether the worker loop is alive."""
        return self._task is not None and not self._task.done()

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The worker loop, once started (a cluster worker watches it end)."""
        return self._task

    def start(self) -> None:
        """Start the worker loop on the running event loop."""
        self._executor = InferenceExecutor()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="whisper-worker")

    async def stop(self) -> None:
        """Stop taking jobs, ask the running ones to stop, and return without waiting on them."""
        for job in self._queue.running:
            job.cancel_reason = job.cancel_reason or STOPPED_REASON
        if self._task is not None:
            # Cancelled again until it ends: a queue's client may swallow one cancellation
            # (redis-py, when it meets its own read timeout).
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=1.0)
            if not self._task.cancelled() and (error := self._task.exception()) is not None:
                log.error("worker_loop_failed", error=type(error).__name__)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _inference(self) -> concurrent.futures.ThreadPoolExecutor:
        """The one inference thread (started with the worker)."""
        if self._executor is None:
            raise RuntimeError("the worker has not been started")
        return self._executor

    async def _run(self) -> None:
        while True:
            batch = await self._queue.next_batch(self._limits.batch_size, batch_key)
            try:
                await self.process_batch(batch)
            finally:
                for entry in batch:
                    entry.payload = None
                    self._queue.done(entry.job)
                    if self.on_job_done is not None:
                        self.on_job_done(entry.job)

    # -- one batch

    async def process_batch(self, batch: list[QueuedJob]) -> None:
        """Decode the uploads, then run the jobs that share a model, batched where possible."""
        started = self._clock.monotonic()
        live = [
            entry.job for entry in batch if not self._cancelled_before_start(entry.job, started)
        ]
        try:
            await self._decode_and_run([e for e in batch if e.job in live], started)
        except asyncio.CancelledError:
            # The worker is stopping: nobody waiting on these jobs may hang.
            for job in live:
                self._end(job, None, job.cancel_reason or STOPPED_REASON, started)
            raise
        except (ModelUnavailableError, NoModelAllowedError) as exc:
            log.error("job_failed", count=len(live), reason="model_unavailable")
            for job in live:
                self._end(job, None, f"no model available: {exc}", started)

    async def _decode_and_run(self, entries: list[QueuedJob], started: float) -> None:
        for entry in entries:
            self._update(entry.job, status=JobStatus.PROCESSING, stage=JobStage.DECODING)
            entry.job.time_processing_started = self._clock.now()
        audios = await self._decode_all(entries, started)
        jobs = [entry.job for entry in entries if entry.job.id in audios]
        if jobs:
            await self._run_on_model(jobs, audios, started)

    async def _decode_all(self, entries: list[QueuedJob], started: float) -> dict[str, Audio]:
        """Each job's upload as samples; a job whose upload fails to decode fails here."""
        audios: dict[str, Audio] = {}
        for entry in entries:
            job, payload = entry.job, entry.payload
            entry.payload = None  # the samples replace the upload
            if payload is None:
                self._end(job, None, job.cancel_reason or "cancelled", started)
                continue
            try:
                audio = await asyncio.to_thread(
                    decode_upload,
                    payload,
                    raw_pcm=job.raw_pcm,
                    max_seconds=self._limits.max_audio_s,
                )
            except AudioDecodeError as exc:
                log.info("job_decode_failed", reason=exc.code)
                self._end(job, None, f"the upload could not be decoded: {exc}", started)
                continue
            del payload
            job.audio_duration = duration_seconds(audio)
            job.options = self._limits.long_form(job.options, job.audio_duration)
            audios[job.id] = audio
        return audios

    async def _run_on_model(
        self, jobs: list[Job], audios: dict[str, Audio], started: float
    ) -> None:
        head = jobs[0].options
        for job in jobs:
            self._update(job, stage=JobStage.LOADING_MODEL)
        async with self._models.acquire(
            needs_multilingual=head.needs_multilingual,
            translate=head.task == "translate",
            model=head.model,
        ) as lease:
            for job in jobs:
                job.target_model, job.used_model = lease.target, lease.name
                job.used_device = lease.device
                self._update(job, stage=JobStage.TRANSCRIBING)
            results = await self._decode_together(jobs, audios, lease)
            for job, result in zip(jobs, results, strict=True):
                await self._settle(job, audios.pop(job.id), lease, result, started)

    def _cancelled_before_start(self, job: Job, started: float) -> bool:
        if job.cancel_requested:
            self._end(job, None, job.cancel_reason or "cancelled", started)
            return True
        return False

    async def _decode_together(
        self, jobs: list[Job], audios: dict[str, Audio], lease: ModelLease
    ) -> list[Transcript | None]:
        """One batched pass over several short jobs; None for each job left to decode alone."""
        batch = getattr(lease.transcriber, "decode_batch", None)
        if len(jobs) < 2 or batch is None:
            return [None] * len(jobs)
        loop = asyncio.get_running_loop()
        began = self._clock.monotonic()
        try:
            results: list[Transcript | None] = await loop.run_in_executor(
                self._inference(),
                batch,
                [audios[job.id] for job in jobs],
                [job.options for job in jobs],
            )
        except Exception as exc:  # decode each job alone instead
            log.warning("batch_failed", count=len(jobs), error=type(exc).__name__)
            return [None] * len(jobs)
        log.info(
            "batch_decoded",
            count=len(jobs),
            kept=sum(result is not None for result in results),
            seconds=round(self._clock.monotonic() - began, 3),
        )
        return results

    async def _settle(
        self,
        job: Job,
        audio: Audio,
        lease: ModelLease,
        batched: Transcript | None,
        started: float,
    ) -> None:
        """Finish one job from its batched result, or decode it alone."""
        if job.cancel_requested:
            self._end(job, None, job.cancel_reason or "cancelled", started)
            return
        result: Transcript | LanguageDetection | None = None
        reason: str | None = None
        try:
            result = await self._result(job, audio, lease, batched)
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
        self, job: Job, audio: Audio, lease: ModelLease, batched: Transcript | None
    ) -> Transcript | LanguageDetection:
        """The batched transcript or the job decoded alone, then speaker labels if asked."""
        if job.options.task == "detect":
            return await self._detect(job, audio, lease)
        transcript = batched if batched is not None else await self._transcribe(job, audio, lease)
        speakers = job.options.speakers
        if speakers is None:
            return transcript
        if self._speaker_stage is None:
            raise SpeakerModelError("this server runs without speaker labels")
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._inference(), self._speaker_stage, audio, transcript, speakers
            )
        finally:
            # Reference clips live only as long as the stage needs them.
            job.options = msgspec.structs.replace(
                job.options,
                speakers=msgspec.structs.replace(speakers, known_speaker_references=()),
            )

    def _end(
        self,
        job: Job,
        result: Transcript | LanguageDetection | None,
        reason: str | None,
        started: float,
    ) -> None:
        """Put a job in its final state (once), wake its waiters and log it."""
        if job.is_final:
            return
        job.processing_duration = self._clock.monotonic() - started
        if result is None:
            job.fail(reason or "transcription failed", self._clock.now())
            self._notifier.notify(job)
            return
        job.finish(result, self._clock.now())
        self._notifier.notify(job)
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

    def _update(self, job: Job, *, status: JobStatus | None = None, stage: JobStage) -> None:
        if status is not None:
            job.status = status
        job.stage = stage
        self._notifier.notify(job)

    async def _detect(self, job: Job, audio: Audio, lease: ModelLease) -> LanguageDetection:
        return await asyncio.get_running_loop().run_in_executor(
            self._inference(),
            lease.transcriber.detect_language,
            audio,
            lambda: job.cancel_requested,
        )

    async def _transcribe(self, job: Job, audio: Audio, lease: ModelLease) -> Transcript:
        """Run the model in the inference thread, within the job's time limit.

        The limit is enforced twice: the engine asks `should_stop` between segments
        and stops once the deadline has passed; should it not get there (one segment
        hanging), the watchdog fails the job `watchdog_grace_s` later and gives the
        worker a fresh inference thread, so the next job runs either way.
        """
        loop = asyncio.get_running_loop()
        if await asyncio.to_thread(is_digital_silence, audio):
            return silent_transcript(job)
        limit_s = self._limits.time_limit_s(job.audio_duration)
        clock = self._clock
        deadline = None if limit_s is None else clock.monotonic() + limit_s

        ticker = ProgressTicker(clock, lambda share: self._set_progress(job, share))

        def report(fraction: float, estimate: Estimate | None = None) -> None:
            loop.call_soon_threadsafe(self._progress, job, fraction, estimate, ticker)

        def decoded(segment: Segment) -> None:
            loop.call_soon_threadsafe(self._add_segment, job, segment)

        def should_stop() -> bool:
            if deadline is not None and limit_s is not None and clock.monotonic() > deadline:
                time_out(job, limit_s)
            return job.cancel_requested

        future = loop.run_in_executor(
            self._inference(),
            lease.transcriber.transcribe,
            audio,
            job.options,
            report,
            should_stop,
            decoded,
        )
        try:
            return await self._within_limit(job, future, limit_s)
        finally:
            ticker.stop()
            job.expected_done_at, job.progress_guessed = None, False

    async def _within_limit(
        self, job: Job, future: asyncio.Future[Transcript], limit_s: float | None
    ) -> Transcript:
        if limit_s is None:
            return await future
        try:
            async with asyncio.timeout(limit_s + self._limits.watchdog_grace_s):
                return await asyncio.shield(future)
        except TimeoutError:
            time_out(job, limit_s)
            self._abandon_inference_thread(future)
            raise JobCancelledError from None

    def _abandon_inference_thread(self, future: asyncio.Future[Transcript]) -> None:
        """Leave a stuck inference call behind (it stops at its next segment) and go on."""
        future.add_done_callback(_ignore_outcome)
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._abandoned.append(self._executor)
        self._executor = InferenceExecutor()
        log.error("inference_thread_abandoned")

    def _progress(
        self, job: Job, fraction: float, estimate: Estimate | None, ticker: ProgressTicker
    ) -> None:
        """The engine's report: the share done and, at a long file's batch, what to expect."""
        if estimate is not None and job.status is JobStatus.PROCESSING and not ticker.stopped:
            ticker.expect(max(fraction, job.progress), estimate)
            job.progress_guessed = estimate.guessed
            if not estimate.guessed:
                job.expected_done_at = self._clock.now() + timedelta(seconds=estimate.total_s)
            if fraction <= job.progress:
                self._notifier.notify(job)  # the share stands, the estimate is news
                return
        self._set_progress(job, fraction)

    def _set_progress(self, job: Job, fraction: float) -> None:
        if job.status is JobStatus.PROCESSING and fraction > job.progress:
            job.progress = fraction
            self._notifier.notify(job)

    def _add_segment(self, job: Job, segment: Segment) -> None:
        if job.status is JobStatus.PROCESSING:
            job.partial_segments.append(segment)
            self._notifier.notify(job)


def _ignore_outcome(future: asyncio.Future[Transcript]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not report it as never retrieved
