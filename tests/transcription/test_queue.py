"""Tests for jobs, the bounded FIFO and the worker (app.transcription.queue)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from app.transcription.engine import ProgressCallback, SegmentCallback, StopCheck
from app.transcription.queue import Job, JobQueue, JobStatus, QueueFullError, Worker
from app.transcription.types import TranscribeOptions, Transcript
from tests.conftest import FakeTranscriber, fake_manager, make_settings

FINAL_TIMEOUT_S = 5


def make_job(prompt: str | None = None, *, language: str = "en") -> Job:
    """A one-second job of quiet noise; `prompt` tells the routing transcriber what to do."""
    return Job(
        task_type="transcribe",
        options=TranscribeOptions(language=language, initial_prompt=prompt),
        # Not digital silence, which the worker answers without a model.
        audio=np.full(16000, 0.01, dtype=np.float32),
        audio_duration=1.0,
    )


@dataclass
class RoutingTranscriber(FakeTranscriber):
    """A FakeTranscriber that hands jobs with a known initial_prompt to another fake."""

    routes: dict[str, FakeTranscriber] = field(default_factory=dict)
    order: list[str | None] = field(default_factory=list)

    def transcribe(
        self,
        audio: Any,
        options: TranscribeOptions,
        on_progress: ProgressCallback,
        should_stop: StopCheck,
        on_segment: SegmentCallback | None = None,
    ) -> Transcript:
        """Record the job's prompt, then decode with its route or as the plain fake."""
        self.order.append(options.initial_prompt)
        route = self.routes.get(options.initial_prompt or "")
        if route is not None:
            return route.transcribe(audio, options, on_progress, should_stop, on_segment)
        return super().transcribe(audio, options, on_progress, should_stop, on_segment)


@dataclass
class Rig:
    """A queue, a running worker on a fake model manager, and the routes' controls."""

    queue: JobQueue
    worker: Worker
    transcriber: RoutingTranscriber
    gate: threading.Event
    done: list[Job]

    async def final(self, job: Job) -> Job:
        """Wait until `job` is finished or failed."""
        await asyncio.wait_for(job.wait_until_final(), FINAL_TIMEOUT_S)
        return job


async def wait_until(predicate: Callable[[], bool], limit_s: float = 2.0) -> None:
    """Poll `predicate` on the event loop; fail the test after `limit_s` seconds."""
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        await asyncio.sleep(0.005)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    """A started worker: prompt "block" waits on a gate, "fail" raises, others succeed."""
    gate = threading.Event()
    transcriber = RoutingTranscriber(
        routes={
            "block": FakeTranscriber(gate=gate),
            "fail": FakeTranscriber(fail_with=RuntimeError("secret words from the audio")),
        }
    )
    settings = make_settings(cpu_fallback_model="base")
    done: list[Job] = []
    queue = JobQueue(max_waiting=8)
    worker = Worker(queue, fake_manager(settings, transcriber), on_job_done=done.append)
    worker.start()
    try:
        yield Rig(queue, worker, transcriber, gate, done)
    finally:
        gate.set()
        await worker.stop()


# ---------------------------------------------------------------- JobQueue alone


def test_submit_beyond_bound_raises_queue_full_at_once() -> None:
    """With max_waiting jobs waiting, one more submit raises QueueFullError and is not queued."""
    queue = JobQueue(max_waiting=2)
    first, second, third = make_job(), make_job(), make_job()
    queue.submit(first)
    assert queue.has_room()
    queue.submit(second)
    assert not queue.has_room()
    with pytest.raises(QueueFullError):
        queue.submit(third)
    assert queue.waiting == 2
    assert queue.position(third) is None
    assert third.status is JobStatus.PENDING


async def test_next_job_is_fifo_and_marks_running() -> None:
    """next_job hands out the oldest waiting job and counts it as running, not waiting."""
    queue = JobQueue(max_waiting=3)
    jobs = [make_job() for _ in range(3)]
    for job in jobs:
        queue.submit(job)
    first = await queue.next_job()
    assert first is jobs[0]
    assert queue.running == [jobs[0]]
    assert queue.waiting == 2
    assert queue.has_room()  # a running job does not take a waiting slot
    assert [queue.position(job) for job in jobs] == [0, 1, 2]
    queue.done(first)
    assert queue.running == []
    assert queue.position(first) is None


async def test_next_job_waits_for_a_submit() -> None:
    """next_job blocks on an empty queue and returns once a job is submitted."""
    queue = JobQueue(max_waiting=1)
    waiter = asyncio.create_task(queue.next_job())
    await asyncio.sleep(0.02)
    assert not waiter.done()
    job = make_job()
    queue.submit(job)
    assert await asyncio.wait_for(waiter, 1) is job


async def test_cancel_waiting_job_fails_it_at_once() -> None:
    """Cancelling a waiting job fails it with the reason, drops its audio and moves others up."""
    queue = JobQueue(max_waiting=3)
    first, second, third = make_job(), make_job(), make_job()
    for job in (first, second, third):
        queue.submit(job)
    assert queue.cancel(second, "cancelled by the client")
    assert second.status is JobStatus.FAILED
    assert second.error == "cancelled by the client"
    assert second.audio is None
    assert second.is_final
    await asyncio.wait_for(second.wait_until_final(), 1)
    assert queue.position(second) is None
    assert queue.position(third) == 2
    assert queue.waiting == 2


def test_cancel_of_unknown_job_returns_false() -> None:
    """Cancelling a job that is not in the queue does nothing and returns False."""
    queue = JobQueue(max_waiting=1)
    job = make_job()
    assert not queue.cancel(job, "gone")
    assert job.status is JobStatus.PENDING
    assert job.error is None


def test_drain_fails_every_waiting_job() -> None:
    """drain() fails all waiting jobs with the reason and returns their number."""
    queue = JobQueue(max_waiting=3)
    jobs = [make_job() for _ in range(3)]
    for job in jobs:
        queue.submit(job)
    assert queue.drain("shutting down") == 3
    assert queue.waiting == 0
    assert all(job.status is JobStatus.FAILED and job.error == "shutting down" for job in jobs)


# ---------------------------------------------------------------- Worker


async def test_worker_runs_jobs_in_fifo_order(rig: Rig) -> None:
    """Jobs run one at a time in the order they were submitted."""
    jobs = [make_job(str(n)) for n in range(5)]
    for job in jobs:
        rig.queue.submit(job)
    for job in jobs:
        await rig.final(job)
    assert rig.transcriber.order == ["0", "1", "2", "3", "4"]
    assert rig.done == jobs
    assert all(job.status is JobStatus.FINISHED for job in jobs)
    started = [job.time_processing_started for job in jobs]
    assert started == sorted(started)  # type: ignore[type-var]


async def test_finished_job_has_transcript_progress_and_no_audio(rig: Rig) -> None:
    """A finished job has its transcript, progress 1.0, model info and no audio left."""
    job = make_job()
    rig.queue.submit(job)
    await rig.final(job)
    assert job.status is JobStatus.FINISHED
    assert job.transcript is not None
    assert job.transcript.text == "hello world"
    assert job.progress == 1.0
    assert job.audio is None
    assert job.error is None
    assert job.used_model == "base"
    assert job.target_model == "base"
    assert job.used_device == "cpu"
    assert job.processing_duration is not None
    assert job.processing_duration >= 0
    assert job.time_processing_started is not None
    assert job.time_processing_finished is not None
    assert job.time_processing_started <= job.time_processing_finished


async def test_progress_rises_while_running(rig: Rig) -> None:
    """Progress reported from the inference thread shows on the job while it runs."""
    job = make_job("block")
    rig.queue.submit(job)
    await wait_until(lambda: job.progress == 0.5)
    assert job.status is JobStatus.PROCESSING
    assert job.audio is not None
    rig.gate.set()
    await rig.final(job)
    assert job.progress == 1.0


async def test_position_is_zero_running_then_waiting_order_then_none(rig: Rig) -> None:
    """position() is 0 for the running job, 1.. for waiting ones and None after they end."""
    running, second, third = make_job("block"), make_job("b"), make_job("c")
    rig.queue.submit(running)
    await wait_until(lambda: running.status is JobStatus.PROCESSING)
    rig.queue.submit(second)
    rig.queue.submit(third)
    assert rig.queue.position(running) == 0
    assert rig.queue.position(second) == 1
    assert rig.queue.position(third) == 2
    rig.gate.set()
    for job in (running, second, third):
        await rig.final(job)
    assert [rig.queue.position(job) for job in (running, second, third)] == [None, None, None]


async def test_failing_job_does_not_stop_the_worker(rig: Rig) -> None:
    """A transcriber error fails that job with a reason; the next job still finishes."""
    bad, good = make_job("fail"), make_job("ok")
    rig.queue.submit(bad)
    rig.queue.submit(good)
    await rig.final(bad)
    await rig.final(good)
    assert bad.status is JobStatus.FAILED
    assert bad.error is not None
    assert "RuntimeError" in bad.error
    assert "secret words" not in bad.error  # the reason never repeats content
    assert bad.audio is None
    assert bad.transcript is None
    assert good.status is JobStatus.FINISHED
    assert rig.worker.is_running


async def test_cancel_waiting_job_while_worker_busy(rig: Rig) -> None:
    """A waiting job cancelled behind a running one fails at once and never runs."""
    running, waiting = make_job("block"), make_job("skipped")
    rig.queue.submit(running)
    await wait_until(lambda: running.status is JobStatus.PROCESSING)
    rig.queue.submit(waiting)
    assert rig.queue.cancel(waiting, "client went away")
    assert waiting.status is JobStatus.FAILED
    assert waiting.error == "client went away"
    rig.gate.set()
    await rig.final(running)
    assert "skipped" not in rig.transcriber.order


async def test_cancel_running_job_stops_it_and_worker_moves_on(rig: Rig) -> None:
    """Cancelling the running job stops it, fails it with the reason, and the next one runs."""
    running, following = make_job("block"), make_job("next")
    rig.queue.submit(running)
    rig.queue.submit(following)
    await wait_until(lambda: running.status is JobStatus.PROCESSING)
    assert rig.queue.cancel(running, "deleted by its owner")
    await rig.final(running)
    assert running.status is JobStatus.FAILED
    assert running.error == "deleted by its owner"
    assert running.audio is None
    assert running.transcript is None
    await rig.final(following)
    assert following.status is JobStatus.FINISHED
    assert not rig.gate.is_set()


async def test_multilingual_job_gets_multilingual_model() -> None:
    """A job without a language asks the manager for a multilingual model."""
    transcriber = FakeTranscriber()
    # MAX_MODEL lifts the CPU cap (CPU_FALLBACK_MODEL), so the job may step up to base.
    settings = make_settings(cpu_fallback_model="tiny.en", max_model="base")
    queue = JobQueue(max_waiting=2)
    worker = Worker(queue, fake_manager(settings, transcriber, available={"tiny.en", "base"}))
    worker.start()
    try:
        english, unknown = make_job(), make_job(language="auto")
        unknown.options = TranscribeOptions(language=None)
        queue.submit(english)
        queue.submit(unknown)
        await asyncio.wait_for(english.wait_until_final(), FINAL_TIMEOUT_S)
        await asyncio.wait_for(unknown.wait_until_final(), FINAL_TIMEOUT_S)
        assert english.used_model == "tiny.en"
        assert unknown.used_model == "base"
        assert unknown.target_model == "tiny"
    finally:
        await worker.stop()


async def test_job_fails_with_reason_when_no_model_is_available() -> None:
    """Without any model the job fails with a 'no model available' reason; the worker lives."""
    queue = JobQueue(max_waiting=2)
    worker = Worker(queue, fake_manager(make_settings(), FakeTranscriber(), available=set()))
    worker.start()
    try:
        job = make_job()
        queue.submit(job)
        await asyncio.wait_for(job.wait_until_final(), FINAL_TIMEOUT_S)
        assert job.status is JobStatus.FAILED
        assert job.error is not None
        assert job.error.startswith("no model available")
        assert worker.is_running
    finally:
        await worker.stop()


async def test_worker_stop_returns_promptly_while_job_blocked(rig: Rig) -> None:
    """Worker.stop() returns within 2 s while a job is blocked, and asks that job to stop."""
    job = make_job("block")
    rig.queue.submit(job)
    await wait_until(lambda: job.status is JobStatus.PROCESSING)
    started = time.monotonic()
    await asyncio.wait_for(rig.worker.stop(), 2)
    assert time.monotonic() - started < 2
    assert not rig.worker.is_running
    assert job.cancel_requested.is_set()
    assert not rig.gate.is_set()


async def test_job_running_at_worker_stop_ends_failed(rig: Rig) -> None:
    """The job that was running when the worker stopped ends failed, so nobody waits forever."""
    job = make_job("block")
    rig.queue.submit(job)
    await wait_until(lambda: job.status is JobStatus.PROCESSING)
    await rig.worker.stop()
    await asyncio.wait_for(job.wait_until_final(), 0.5)
    assert job.status is JobStatus.FAILED
    assert job.error


async def test_notify_wakes_change_waiters() -> None:
    """A change token taken before a change is set by notify(); the next token is fresh."""
    job = make_job()
    token = job.change_token()
    assert not token.is_set()
    job.notify()
    assert token.is_set()
    assert not job.change_token().is_set()
    started = time.monotonic()
    await Job.wait_for_change(job.change_token(), 0.02)
    assert time.monotonic() - started >= 0.015


# ---------------------------------------------------------------- batching


def batch_job(duration: float = 1.0, **options: Any) -> Job:
    """A silent job with default (batchable) options unless told otherwise."""
    return Job(
        task_type="transcribe",
        options=TranscribeOptions(**options),
        audio=np.full(int(16000 * duration), 0.01, dtype=np.float32),  # not digital silence
        audio_duration=duration,
    )


async def test_next_batch_keeps_fifo_and_skips_incompatible_jobs() -> None:
    """The oldest job leads; compatible later jobs join up to the size; others keep their place."""
    from app.transcription.queue import batch_key

    queue = JobQueue(10)
    first, long_one, second, translate, third, fourth = (
        batch_job(),
        batch_job(duration=45.0),
        batch_job(),
        batch_job(task="translate"),
        batch_job(),
        batch_job(),
    )
    for job in (first, long_one, second, translate, third, fourth):
        queue.submit(job)
    batch = await queue.next_batch(3, batch_key)
    assert batch == [first, second, third]
    assert [queue.position(job) for job in batch] == [0, 0, 0]
    assert queue.position(long_one) == 1 and queue.position(translate) == 2
    assert await queue.next_batch(3, batch_key) == [long_one]  # long audio decodes alone


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
            else self.transcribe(audio, option, lambda _: None, lambda: False)
            for audio, option in zip(audios, options, strict=True)
        ]


async def test_worker_batches_waiting_jobs_and_decodes_leftovers_alone() -> None:
    """Waiting compatible jobs share one decode_batch call; rejected ones run alone; all finish."""
    fake = BatchingFake(text="batched")
    settings = make_settings()
    queue = JobQueue(10)
    worker = Worker(queue, fake_manager(settings, fake), batch_size=4)
    jobs = [batch_job(), batch_job(), batch_job(duration=2.0), batch_job()]
    for job in jobs:
        queue.submit(job)
    worker.start()
    try:
        for job in jobs:
            await asyncio.wait_for(job.wait_until_final(), FINAL_TIMEOUT_S)
    finally:
        await worker.stop()
    assert fake.batches == [4]
    assert all(job.status is JobStatus.FINISHED for job in jobs)
    assert all(job.transcript is not None and job.transcript.text == "batched" for job in jobs)
    assert len(fake.calls) == 4  # three answered inside the batch, then the 2 s job alone
    assert all(job.progress == 1.0 and job.audio is None for job in jobs)


async def test_cancelled_job_in_a_batch_fails_and_others_finish() -> None:
    """A job cancelled while its batch is decoded ends failed; the rest of the batch finishes."""
    gate = threading.Event()
    fake = BatchingFake(gate=gate)
    queue = JobQueue(10)
    worker = Worker(queue, fake_manager(make_settings(), fake), batch_size=4)
    jobs = [batch_job() for _ in range(3)]
    for job in jobs:
        queue.submit(job)
    worker.start()
    try:
        await wait_until(lambda: jobs[1].status is JobStatus.PROCESSING)
        queue.cancel(jobs[1], "deleted by its owner")
        gate.set()
        for job in jobs:
            await asyncio.wait_for(job.wait_until_final(), FINAL_TIMEOUT_S)
    finally:
        await worker.stop()
    assert [job.status for job in jobs] == [
        JobStatus.FINISHED,
        JobStatus.FAILED,
        JobStatus.FINISHED,
    ]
    assert jobs[1].error == "deleted by its owner"


async def test_worker_waits_for_uploads_in_flight_to_join_the_batch() -> None:
    """Jobs landing while other uploads are still decoding join the first batch."""
    fake = BatchingFake()
    in_flight = {"count": 3}
    queue = JobQueue(10)
    worker = Worker(
        queue,
        fake_manager(make_settings(), fake),
        batch_size=4,
        arrivals=lambda: in_flight["count"],
    )
    jobs = [batch_job() for _ in range(4)]
    queue.submit(jobs[0])
    worker.start()
    try:
        for job in jobs[1:]:
            await asyncio.sleep(0.03)
            queue.submit(job)
            in_flight["count"] -= 1
        for job in jobs:
            await asyncio.wait_for(job.wait_until_final(), FINAL_TIMEOUT_S)
    finally:
        await worker.stop()
    assert fake.batches == [4]


async def test_lone_job_does_not_wait_without_uploads_in_flight() -> None:
    """With nothing arriving, a single job starts at once (no linger)."""
    fake = BatchingFake()
    queue = JobQueue(10)
    worker = Worker(queue, fake_manager(make_settings(), fake), batch_size=4, max_linger_s=5.0)
    job = batch_job()
    queue.submit(job)
    worker.start()
    began = time.monotonic()
    try:
        await asyncio.wait_for(job.wait_until_final(), FINAL_TIMEOUT_S)
    finally:
        await worker.stop()
    assert time.monotonic() - began < 2.0
    assert fake.batches == []


# ---------------------------------------------------------------- reservations, limits, silence


def test_reserved_places_count_as_taken_until_used_or_released() -> None:
    """reserve() holds a place against other submits; submit(reserved=True) fills it."""
    queue = JobQueue(max_waiting=2)
    queue.reserve()
    queue.reserve()
    assert not queue.has_room()
    with pytest.raises(QueueFullError):
        queue.reserve()
    with pytest.raises(QueueFullError):
        queue.submit(make_job())
    queue.submit(make_job(), reserved=True)
    queue.release()
    assert queue.waiting == 1 and queue.reserved == 0
    assert queue.has_room()


@dataclass
class UntilStopped(FakeTranscriber):
    """Decodes "segments" forever, asking should_stop between them as the engine does."""

    def transcribe(
        self,
        audio: Any,
        options: TranscribeOptions,
        on_progress: ProgressCallback,
        should_stop: StopCheck,
        on_segment: Any = None,
    ) -> Transcript:
        """Loop until told to stop, then raise like the engine."""
        from app.transcription.engine import JobCancelledError

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


async def run_worker(
    transcriber: FakeTranscriber, jobs: list[Job], **worker_options: Any
) -> list[Job]:
    """Run `jobs` through a fresh worker and return them once all are final."""
    queue = JobQueue(max_waiting=8)
    settings = make_settings(cpu_fallback_model="base")
    worker = Worker(queue, fake_manager(settings, transcriber), **worker_options)
    worker.start()
    try:
        for job in jobs:
            queue.submit(job)
        for job in jobs:
            await asyncio.wait_for(job.wait_until_final(), FINAL_TIMEOUT_S)
    finally:
        await worker.stop()
    return jobs


async def test_job_past_its_time_limit_fails_with_a_reason_and_the_next_runs() -> None:
    """A decode that runs past its limit stops at a segment boundary; the worker goes on."""
    transcriber = RoutingTranscriber(routes={"endless": UntilStopped()})
    slow, good = make_job("endless"), make_job()
    await run_worker(transcriber, [slow, good], time_limit=lambda audio_s: 0.1 + 0 * audio_s)
    assert slow.status is JobStatus.FAILED
    assert slow.error is not None and "time limit of 0.1 s" in slow.error
    assert slow.timed_out
    assert good.status is JobStatus.FINISHED


async def test_watchdog_fails_a_hung_decode_and_the_worker_moves_on() -> None:
    """A decode stuck inside a segment is failed after the grace; the next job still runs."""
    stuck = Stuck()
    transcriber = RoutingTranscriber(routes={"hang": stuck})
    hung, good = make_job("hang"), make_job()
    try:
        await run_worker(
            transcriber, [hung, good], time_limit=lambda audio_s: 0.05, watchdog_grace_s=0.1
        )
    finally:
        stuck.release.set()
    assert hung.status is JobStatus.FAILED
    assert hung.error is not None and "time limit" in hung.error
    assert good.status is JobStatus.FINISHED
    assert good.transcript is not None and good.transcript.text == "hello world"


async def test_time_limit_scales_with_the_audio_length() -> None:
    """The worker asks for the limit of each job's own audio length."""
    asked: list[float] = []

    def limit(audio_s: float) -> float:
        asked.append(audio_s)
        return 60.0

    long_job = make_job()
    long_job.audio_duration = 42.0
    await run_worker(FakeTranscriber(), [make_job(), long_job], time_limit=limit)
    assert asked == [1.0, 42.0]


async def test_digital_silence_gives_an_empty_result_without_the_model() -> None:
    """All-zero audio finishes with empty text and no segments; the model is not asked."""
    transcriber = FakeTranscriber()
    silent = make_job(language="de")
    silent.audio = np.zeros(16000 * 600, dtype=np.float32)
    silent.audio_duration = 600.0
    await run_worker(transcriber, [silent])
    assert silent.status is JobStatus.FINISHED
    assert silent.transcript is not None
    assert silent.transcript.text == ""
    assert silent.transcript.segments == []
    assert silent.transcript.language == "de"
    assert transcriber.calls == []
