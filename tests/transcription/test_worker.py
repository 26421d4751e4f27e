"""Tests for the worker: decoding at the job's turn, FIFO, failures, batching, limits."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from app.transcription.engine import JobCancelledError, ProgressCallback, StopCheck
from app.transcription.jobs import Job, JobStage, JobStatus
from app.transcription.types import TranscribeOptions, Transcript
from tests.conftest import FakeTranscriber, make_settings
from tests.transcription.rig import (
    FakeClock,
    Rig,
    RoutingTranscriber,
    enqueue,
    make_job,
    pcm,
    start_rig,
    wait_until,
)


async def run_jobs(
    transcriber: FakeTranscriber, jobs: list[Job], payloads: list[bytes] | None = None, **kw: Any
) -> Rig:
    """Run `jobs` through a fresh worker and return the rig once all are final."""
    started = start_rig(transcriber, **kw)
    try:
        for index, job in enumerate(jobs):
            enqueue(started.queue, job, payloads[index] if payloads else None)
        for job in jobs:
            await started.final(job)
    finally:
        await started.worker.stop()
    return started


async def test_worker_runs_jobs_in_fifo_order(rig: Rig) -> None:
    """Jobs run one at a time in the order they were queued."""
    jobs = [make_job(str(n)) for n in range(5)]
    for job in jobs:
        enqueue(rig.queue, job)
    for job in jobs:
        await rig.final(job)
    assert isinstance(rig.transcriber, RoutingTranscriber)
    assert rig.transcriber.order == ["0", "1", "2", "3", "4"]
    assert rig.done == jobs
    assert all(job.status is JobStatus.FINISHED for job in jobs)


async def test_the_worker_decodes_the_upload_when_the_job_runs(rig: Rig) -> None:
    """The upload becomes samples only at the job's turn; the exact length replaces the estimate."""
    job = make_job(seconds=9.0)  # the probe's estimate
    enqueue(rig.queue, job, pcm(2.5))
    await rig.final(job)
    assert rig.transcriber.audio_seen == [40000]
    assert job.audio_duration == 2.5
    assert job.status is JobStatus.FINISHED and job.stage is JobStage.DONE


async def test_an_upload_that_fails_to_decode_fails_its_job_and_the_next_runs(rig: Rig) -> None:
    """Bytes that cannot be decoded fail their job with a reason; the worker goes on."""
    broken, good = make_job(), make_job()
    broken.raw_pcm = False
    enqueue(rig.queue, broken, b"this is not audio at all")
    enqueue(rig.queue, good)
    await rig.final(broken)
    await rig.final(good)
    assert broken.status is JobStatus.FAILED
    assert broken.error is not None and broken.error.startswith("the upload could not be decoded")
    assert good.status is JobStatus.FINISHED


async def test_audio_longer_than_the_limit_fails_at_decode() -> None:
    """A job whose upload decodes past MAX_AUDIO_DURATION_S fails with the limit in its reason."""
    job = make_job(seconds=1.0)
    await run_jobs(FakeTranscriber(), [job], [pcm(3.0)], max_audio_s=2.0)
    assert job.status is JobStatus.FAILED
    assert job.error is not None and "at most 2 s" in job.error


async def test_finished_job_has_transcript_progress_and_model(rig: Rig) -> None:
    """A finished job has its transcript, progress 1.0, model info and timings."""
    job = make_job()
    enqueue(rig.queue, job)
    await rig.final(job)
    assert job.transcript is not None and job.transcript.text == "hello world"
    assert job.progress == 1.0
    assert job.error is None
    assert (job.used_model, job.target_model, job.used_device) == ("base", "base", "cpu")
    assert job.processing_duration is not None and job.processing_duration >= 0
    assert job.time_processing_started is not None
    assert job.time_processing_finished is not None
    assert job.time_processing_started <= job.time_processing_finished


async def test_progress_and_stage_show_while_running(rig: Rig) -> None:
    """Progress reported from the inference thread shows on the job while it runs."""
    job = make_job("block")
    enqueue(rig.queue, job)
    await wait_until(rig.notifier, job, lambda: job.progress == 0.5)
    assert job.status is JobStatus.PROCESSING
    assert job.stage is JobStage.TRANSCRIBING
    rig.gate.set()
    await rig.final(job)
    assert job.progress == 1.0


async def test_position_is_zero_running_then_waiting_order_then_none(rig: Rig) -> None:
    """position() is 0 for the running job, 1.. for waiting ones and None after they end."""
    running, second, third = make_job("block"), make_job("b"), make_job("c")
    enqueue(rig.queue, running)
    await wait_until(rig.notifier, running, lambda: running.status is JobStatus.PROCESSING)
    enqueue(rig.queue, second)
    enqueue(rig.queue, third)
    assert [rig.queue.position(job) for job in (running, second, third)] == [0, 1, 2]
    rig.gate.set()
    for job in (running, second, third):
        await rig.final(job)
    assert [rig.queue.position(job) for job in (running, second, third)] == [None, None, None]


async def test_failing_job_does_not_stop_the_worker(rig: Rig) -> None:
    """A transcriber error fails that job with a reason; the next job still finishes."""
    bad, good = make_job("fail"), make_job("ok")
    enqueue(rig.queue, bad)
    enqueue(rig.queue, good)
    await rig.final(bad)
    await rig.final(good)
    assert bad.status is JobStatus.FAILED
    assert bad.error is not None and "RuntimeError" in bad.error
    assert "secret words" not in bad.error  # the reason never repeats content
    assert bad.transcript is None
    assert good.status is JobStatus.FINISHED
    assert rig.worker.is_running


async def test_cancel_waiting_job_while_worker_busy(rig: Rig) -> None:
    """A waiting job cancelled behind a running one fails at once and never runs."""
    running, waiting = make_job("block"), make_job("skipped")
    enqueue(rig.queue, running)
    await wait_until(rig.notifier, running, lambda: running.status is JobStatus.PROCESSING)
    enqueue(rig.queue, waiting)
    assert rig.queue.cancel(waiting, "client went away")
    assert waiting.status is JobStatus.FAILED and waiting.error == "client went away"
    rig.gate.set()
    await rig.final(running)
    assert isinstance(rig.transcriber, RoutingTranscriber)
    assert "skipped" not in rig.transcriber.order


async def test_cancel_running_job_stops_it_and_worker_moves_on(rig: Rig) -> None:
    """Cancelling the running job stops it, fails it with the reason, and the next one runs."""
    running, following = make_job("block"), make_job("next")
    enqueue(rig.queue, running)
    enqueue(rig.queue, following)
    await wait_until(rig.notifier, running, lambda: running.status is JobStatus.PROCESSING)
    assert rig.queue.cancel(running, "deleted by its owner")
    await rig.final(running)
    assert running.status is JobStatus.FAILED and running.error == "deleted by its owner"
    assert running.transcript is None
    await rig.final(following)
    assert following.status is JobStatus.FINISHED
    assert not rig.gate.is_set()


async def test_multilingual_job_gets_multilingual_model() -> None:
    """A job without a language asks the manager for a multilingual model."""
    english, unknown = make_job(), make_job(language=None)
    settings = make_settings(cpu_fallback_model="tiny.en", max_model="base")
    await run_jobs(FakeTranscriber(), [english, unknown], settings=settings)
    assert english.used_model == "tiny.en"
    assert unknown.used_model == "base"
    assert unknown.target_model == "tiny"


async def test_job_fails_with_reason_when_no_model_is_available() -> None:
    """Without any model the job fails with a 'no model available' reason; the worker lives."""
    job = make_job()
    started = start_rig(FakeTranscriber(), available=set())
    try:
        enqueue(started.queue, job)
        await started.final(job)
        assert job.status is JobStatus.FAILED
        assert job.error is not None and job.error.startswith("no model available")
        assert started.worker.is_running
    finally:
        await started.worker.stop()


async def test_worker_stop_returns_promptly_while_job_blocked(rig: Rig) -> None:
    """Worker.stop() returns while a job is blocked, asks that job to stop, and fails it."""
    job = make_job("block")
    enqueue(rig.queue, job)
    await wait_until(rig.notifier, job, lambda: job.status is JobStatus.PROCESSING)
    await asyncio.wait_for(rig.worker.stop(), 2)
    assert not rig.worker.is_running
    assert job.cancel_requested
    assert not rig.gate.is_set()
    await asyncio.wait_for(rig.notifier.wait_until_final(job), 1)
    assert job.status is JobStatus.FAILED and job.error


@dataclass
class BatchingFake(FakeTranscriber):
    """A fake that decodes batches, leaving jobs whose audio is 2 s long to the single path."""

    batches: list[int] = field(default_factory=list)

    def decode_batch(self, audios: list[Any], options: list[TranscribeOptions]) -> list[Any]:
        """Record the batch size; answer short clips, None for 2 s ones."""
        self.batches.append(len(audios))
        return [
            None
            if len(audio) == 32000
            else self.transcribe(audio, option, lambda *_: None, lambda: False)
            for audio, option in zip(audios, options, strict=True)
        ]


async def test_worker_batches_waiting_jobs_and_decodes_leftovers_alone() -> None:
    """Waiting compatible jobs share one decode_batch call; rejected ones run alone; all finish."""
    fake = BatchingFake(text="batched")
    started = start_rig(fake, batch_size=4)
    await started.worker.stop()  # queue first, then run: all four wait together
    jobs = [make_job(), make_job(), make_job(seconds=2.0), make_job()]
    for job in jobs:
        enqueue(started.queue, job)
    started.worker.start()
    try:
        for job in jobs:
            await started.final(job)
    finally:
        await started.worker.stop()
    assert fake.batches == [4]
    assert all(job.transcript is not None and job.transcript.text == "batched" for job in jobs)
    assert len(fake.calls) == 4  # three answered inside the batch, then the 2 s job alone


@dataclass
class UntilStopped(FakeTranscriber):
    """Decodes "segments" forever, asking should_stop between them as the engine does."""

    entered: threading.Event = field(default_factory=threading.Event)

    def transcribe(
        self,
        audio: Any,
        options: TranscribeOptions,
        on_progress: ProgressCallback,
        should_stop: StopCheck,
        on_segment: Any = None,
    ) -> Transcript:
        """Loop until told to stop, then raise like the engine."""
        self.entered.set()
        while not should_stop():
            time.sleep(0.005)
        raise JobCancelledError


@dataclass
class Stuck(FakeTranscriber):
    """A decode that hangs inside one segment and never looks at should_stop."""

    release: threading.Event = field(default_factory=threading.Event)

    def transcribe(
        self,
        audio: Any,
        options: TranscribeOptions,
        on_progress: ProgressCallback,
        should_stop: StopCheck,
        on_segment: Any = None,
    ) -> Transcript:
        """Block until the test releases it."""
        self.release.wait(30)
        return super().transcribe(audio, options, on_progress, lambda: False)


async def test_job_past_its_time_limit_fails_with_a_reason_and_the_next_runs() -> None:
    """A decode that runs past its limit stops at a segment boundary; the worker goes on."""
    clock = FakeClock()
    endless = UntilStopped()
    transcriber = RoutingTranscriber(routes={"endless": endless})
    slow, good = make_job("endless"), make_job()
    started = start_rig(transcriber, clock=clock, time_limit_floor_s=10.0)
    try:
        enqueue(started.queue, slow)
        enqueue(started.queue, good)
        await asyncio.to_thread(endless.entered.wait, 2)
        clock.advance(11.0)  # past the limit: the next should_stop says so
        await started.final(slow)
        await started.final(good)
    finally:
        await started.worker.stop()
    assert slow.status is JobStatus.FAILED
    assert slow.error is not None and "time limit of 10.0 s" in slow.error
    assert slow.timed_out
    assert good.status is JobStatus.FINISHED


async def test_watchdog_fails_a_hung_decode_and_the_worker_moves_on() -> None:
    """A decode stuck inside a segment is failed after the grace; the next job still runs."""
    stuck = Stuck()
    transcriber = RoutingTranscriber(routes={"hang": stuck})
    hung, good = make_job("hang"), make_job()
    try:
        await run_jobs(
            transcriber,
            [hung, good],
            time_limit_floor_s=0.05,
            watchdog_grace_s=0.1,
        )
    finally:
        stuck.release.set()
    assert hung.status is JobStatus.FAILED
    assert hung.error is not None and "time limit" in hung.error
    assert good.status is JobStatus.FINISHED


async def test_time_limit_scales_with_the_audio_length() -> None:
    """The limit is a floor plus a factor times each job's own decoded length."""
    clock = FakeClock()
    endless = UntilStopped()
    transcriber = RoutingTranscriber(routes={"endless": endless})
    job = make_job("endless", seconds=4.0)
    started = start_rig(transcriber, clock=clock, time_limit_floor_s=10.0, time_limit_factor=2.0)
    try:
        enqueue(started.queue, job)
        await asyncio.to_thread(endless.entered.wait, 2)
        clock.advance(17.0)  # within 10 + 2 * 4 s
        await asyncio.sleep(0.05)
        assert not job.is_final
        clock.advance(2.0)
        await started.final(job)
    finally:
        await started.worker.stop()
    assert job.error is not None and "time limit of 18.0 s" in job.error


async def test_digital_silence_gives_an_empty_result_without_the_model() -> None:
    """All-zero audio finishes with empty text and no segments; the model is not asked."""
    transcriber = FakeTranscriber()
    silent = make_job(language="de", seconds=600.0)
    await run_jobs(transcriber, [silent], [pcm(600.0, level=0.0)])
    assert silent.transcript is not None
    assert silent.transcript.text == "" and silent.transcript.segments == []
    assert silent.transcript.language == "de"
    assert transcriber.calls == []


async def test_long_audio_gets_the_batched_long_form_pipeline() -> None:
    """BATCHED_INFERENCE=auto hands audio over a minute to the batched pipeline, short audio not."""
    transcriber = FakeTranscriber()
    short, long = make_job(seconds=5.0), make_job(seconds=61.0)
    await run_jobs(
        transcriber, [short, long], [pcm(5.0), pcm(61.0)], batch_size=4, batched_inference="auto"
    )
    assert [call.long_form_batch_size for call in transcriber.calls] == [0, 4]
