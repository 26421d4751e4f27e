"""Long-form progress: chunk ends, the pace kept per model, and the ticker between reports."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from app.transcription.engine import StopCheck
from app.transcription.progress import (
    DEFAULT_PRIOR_S,
    SEQUENTIAL_TO_BATCHED,
    SPAN_CAP,
    TICK_S,
    BatchPace,
    Estimate,
    LongFormProgress,
    ProgressCallback,
    ProgressTicker,
)
from app.transcription.types import TranscribeOptions, Transcript
from tests.conftest import FakeTranscriber
from tests.transcription.rig import FakeClock, enqueue, make_job, start_rig, wait_until

RATE = 16000


def chunk(start_s: float, end_s: float, offset_s: float) -> dict[str, Any]:
    """A VAD chunk as faster-whisper describes it: speech-time offset, original samples."""
    return {
        "offset": offset_s,
        "duration": end_s - start_s,
        "segments": [{"start": int(start_s * RATE), "end": int(end_s * RATE)}],
    }


@dataclass
class Calls:
    """Every (fraction, estimate) a progress callback received."""

    seen: list[tuple[float, Estimate | None]] = field(default_factory=list)

    def __call__(self, fraction: float, estimate: Estimate | None = None, /) -> None:
        """Record one report."""
        self.seen.append((fraction, estimate))


class Stopwatch:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.time = 0.0

    def __call__(self) -> float:
        """The time it stands at."""
        return self.time


# Six 20 s chunks of speech over 200 s of audio, each followed by a pause.
CHUNKS = [chunk(start, start + 20, index * 20.0) for index, start in enumerate(range(0, 180, 30))]


def run_batches(tracker: LongFormProgress, watch: Stopwatch, seconds: list[float]) -> None:
    """Decode CHUNKS in batches of four in two parts, each batch taking its `seconds`."""
    tracker.plan(CHUNKS, 4)
    for first, took in zip(range(0, len(CHUNKS), 4), seconds, strict=True):
        batch = CHUNKS[first : first + 4]
        tracker.batch_started()
        watch.time += took
        half = (len(batch) + 1) // 2
        tracker.chunks_done(batch[:half])
        tracker.chunks_done(batch[half:])
        tracker.segment_done(batch[0]["segments"][0]["end"] / RATE)  # earlier: no report
        tracker.batch_finished()


def test_chunk_ends_reported_per_part_and_the_pace_kept_for_the_next_file() -> None:
    """Each part's last chunk end is reported; the next file's first batch gets an estimate."""
    pace, watch = BatchPace(), Stopwatch()
    first = Calls()
    run_batches(LongFormProgress(200.0, first, pace, parallel=2, monotonic=watch), watch, [8, 4])
    # Batch 1 (chunks 1-4, parts of two): 40 s of speech on the busiest replica in 8 s.
    # Its first batch had no pace; the second is estimated at the first's: 0.2 s a second.
    assert [share for share, _ in first.seen] == [0.0, 0.25, 0.55, 0.55, 0.7, 0.85]
    assert [estimate is None for _, estimate in first.seen] == [
        False,
        True,
        True,
        False,
        True,
        True,
    ]
    # No pace yet: the first batch is estimated from the prior, marked as a guess.
    guess = first.seen[0][1]
    assert guess is not None and guess.guessed
    assert figures(guess) == pytest.approx((0.55, 40 * DEFAULT_PRIOR_S, 60 * DEFAULT_PRIOR_S))
    assert figures(first.seen[3][1]) == pytest.approx((0.85, 4.0, 4.0))
    assert first.seen[3][1] is not None and not first.seen[3][1].guessed
    assert pace.seconds_per_speech_s == pytest.approx(12 / 60)
    second = Calls()
    run_batches(LongFormProgress(200.0, second, pace, parallel=2, monotonic=watch), watch, [8, 4])
    assert second.seen[0][0] == 0.0
    assert figures(second.seen[0][1]) == pytest.approx((0.55, 8.0, 12.0))


def test_prior_follows_the_model_s_pace_on_short_files() -> None:
    """Before any batch is timed the prior is the fixed guess, then the short files' pace."""
    pace = BatchPace()
    assert pace.prior() == DEFAULT_PRIOR_S
    pace.record_sequential(0.04)
    assert pace.prior() == pytest.approx(SEQUENTIAL_TO_BATCHED * 0.04)
    pace.record(0.3)
    assert pace.seconds_per_speech_s == 0.3  # a timed batch wins over the prior


def figures(estimate: Estimate | None) -> tuple[float, float, float]:
    """An estimate's share at its batch's end, seconds until then, seconds until done."""
    assert estimate is not None
    return estimate.until, estimate.until_s, estimate.total_s


async def test_ticker_moves_toward_the_batch_end_and_stops_short_of_it() -> None:
    """At the expected pace, at most SPAN_CAP of the way; nothing after stop()."""
    clock = FakeClock(autoadvance=False)
    moves: list[float] = []
    ticker = ProgressTicker(clock, moves.append)
    assert ticker.current() is None
    ticker.expect(0.2, Estimate(until=0.7, until_s=10.0, total_s=12.0))
    await asyncio.sleep(0)  # the ticker task starts and sleeps on the clock
    for _ in range(4):
        clock.advance(TICK_S)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    assert moves[-1] == pytest.approx(0.2 + 0.5 * 4 * TICK_S / 10)
    clock.advance(60.0)
    assert ticker.current() == pytest.approx(0.2 + 0.5 * SPAN_CAP)
    ticker.stop()
    assert ticker.current() is None
    ticker.expect(0.3, Estimate(until=0.9, until_s=5.0, total_s=5.0))  # late: ignored
    assert ticker.current() is None and ticker.stopped


@dataclass
class Estimating(FakeTranscriber):
    """Reports 10 %, then a batch expected to reach 60 % in 10 s, then waits to be released."""

    release: threading.Event = field(default_factory=threading.Event)
    guessed: bool = False

    def transcribe(
        self,
        audio: Any,
        options: TranscribeOptions,
        on_progress: ProgressCallback,
        should_stop: StopCheck,
        on_segment: Any = None,
    ) -> Transcript:
        """Report, wait for the test, then answer as the plain fake."""
        on_progress(0.1, Estimate(until=0.6, until_s=10.0, total_s=30.0, guessed=self.guessed))
        self.release.wait(5)
        return super().transcribe(audio, options, lambda *_: None, should_stop)


async def test_worker_moves_the_share_on_the_clock_and_expects_the_end() -> None:
    """Between the engine's reports the job's share moves at the estimate's pace; 1.0 at the end."""
    clock = FakeClock(autoadvance=False)
    fake = Estimating()
    rig = start_rig(fake, clock=clock)
    job = make_job(seconds=2.0)
    try:
        enqueue(rig.queue, job)
        await wait_until(rig.notifier, job, lambda: job.expected_done_at is not None)
        assert job.expected_done_at is not None
        assert (job.expected_done_at - clock.now()).total_seconds() == pytest.approx(30.0)
        for _ in range(5):
            clock.advance(TICK_S)
            await asyncio.sleep(0.01)
        await wait_until(rig.notifier, job, lambda: job.progress >= 0.35 - 1e-9)
        assert job.progress < 0.6
        fake.release.set()
        await rig.final(job)
    finally:
        fake.release.set()
        await rig.worker.stop()
    assert job.progress == 1.0
    assert job.expected_done_at is None


async def test_a_guessed_estimate_moves_the_share_but_promises_no_time() -> None:
    """The first batch's prior moves the share on the clock; seconds_left waits for a timing."""
    clock = FakeClock(autoadvance=False)
    fake = Estimating(guessed=True)
    rig = start_rig(fake, clock=clock)
    job = make_job(seconds=2.0)
    try:
        enqueue(rig.queue, job)
        await wait_until(rig.notifier, job, lambda: job.progress >= 0.1)
        for _ in range(5):
            clock.advance(TICK_S)
            await asyncio.sleep(0.01)
        await wait_until(rig.notifier, job, lambda: job.progress >= 0.35 - 1e-9)
        assert job.expected_done_at is None and job.progress_guessed
        fake.release.set()
        await rig.final(job)
    finally:
        fake.release.set()
        await rig.worker.stop()
    assert job.progress == 1.0
