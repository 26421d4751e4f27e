"""Long-form progress: chunk ends as soon as they are known, and the pace of the rest.

The batched pipeline (long_form.py) decodes a batch of VAD chunks in one model call,
so the audio done moves in steps of a whole batch: a 120 s talk is one batch of four
chunks (93 %) and a short tail. Two things make it move with the work instead:

- **Chunk ends as they are known** (`LongFormProgress`, inference thread): each part
  of a split batch is reported once it is segmented and aligned, before the batch's
  segments are yielded.
- **The pace** (`BatchPace`, one per loaded model): wall seconds per second of speech
  on a batch's busiest replica, measured on every batch and kept for the next file.
  At each batch's start the engine says where that batch ends, when it should get
  there and when the whole file should be done (`Estimate`); the worker's
  `ProgressTicker` (event loop) moves the share toward that end at that pace, never
  past `SPAN_CAP` of the way, so only the batch itself reaches its end and only the
  finished job reaches 100 %.

The first batch of the first long file a model decodes has no measured pace: it is
estimated from a prior (`BatchPace.prior`: the model's pace on short files, scaled to
batches, or a fixed guess), marked `guessed`, so its share moves but no time left is
promised until a batch has been timed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgspec

from app.clock import Clock
from app.transcription.replicas import part_bounds

__all__ = [
    "BEFORE_DONE",
    "SPAN_CAP",
    "TICK_S",
    "BatchPace",
    "Estimate",
    "LongFormProgress",
    "ProgressCallback",
    "ProgressTicker",
]

SAMPLE_RATE = 16000
# Before the job is done its share stays below 100 %, whatever a segment's end says.
BEFORE_DONE = 0.999
# How far into a batch's span the ticker may go on the estimate alone.
SPAN_CAP = 0.9
# How often the ticker moves a job's share (each move notifies the job's followers).
TICK_S = 1.0
# Before any batch was timed: wall seconds per second of speech on a replica, as `base`
# (int8) runs on one CPU core; a guess, only ever used to move the share, never promised.
DEFAULT_PRIOR_S = 0.15
# A batch replica's pace against the sequential path's, per second of audio (measured:
# 0.05-0.10 s per second of audio sequentially, 0.15 s per second of speech in batches).
SEQUENTIAL_TO_BATCHED = 2.0


class Estimate(msgspec.Struct, frozen=True, kw_only=True):
    """What the engine expects as it starts a batch, in seconds from that moment."""

    until: float  # the share done once this batch is finished
    until_s: float  # seconds until then
    total_s: float  # seconds until the whole job is done
    # From a prior, not a timed batch: the share may move, no time left is promised.
    guessed: bool = False


class ProgressCallback(Protocol):
    """Told the share of the audio done, and at a batch's start what the engine expects."""

    def __call__(self, fraction: float, estimate: Estimate | None = None, /) -> None:
        """Must be cheap: it is called from the inference thread."""
        ...


class BatchPace:
    """Wall seconds per second of speech on a batch's busiest replica, for one model.

    Shared by that model's jobs (one at a time), so a file's first batch is estimated
    from the files before it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds_per_speech_s: float | None = None
        self._sequential_s: float | None = None

    @property
    def seconds_per_speech_s(self) -> float | None:
        """The last measured pace, or None before any batch was timed."""
        with self._lock:
            return self._seconds_per_speech_s

    def record(self, seconds_per_speech_s: float) -> None:
        """Keep a measured pace."""
        with self._lock:
            self._seconds_per_speech_s = seconds_per_speech_s

    def record_sequential(self, seconds_per_audio_s: float) -> None:
        """Keep how fast the model decoded a short file (the sequential path)."""
        with self._lock:
            self._sequential_s = seconds_per_audio_s

    def prior(self) -> float:
        """A guess at the batch pace before any batch was timed."""
        with self._lock:
            sequential = self._sequential_s
        return DEFAULT_PRIOR_S if sequential is None else SEQUENTIAL_TO_BATCHED * sequential


def _chunk_end_s(chunk: dict[str, Any]) -> float:
    """Where a VAD chunk ends in the original audio (its offsets are in speech time)."""
    pieces = chunk.get("segments") or []
    if pieces:
        return float(pieces[-1]["end"]) / SAMPLE_RATE
    return float(chunk["offset"]) + float(chunk["duration"])


class LongFormProgress:
    """One long file's progress as the batched pipeline works through its chunks."""

    def __init__(
        self,
        duration_s: float,
        on_progress: ProgressCallback,
        pace: BatchPace,
        *,
        parallel: int = 1,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._duration_s = duration_s
        self._on_progress = on_progress
        self._pace = pace
        self._parallel = max(1, parallel)
        self._monotonic = monotonic
        self._works: list[float] = []  # per batch: speech seconds on its busiest replica
        self._ends: list[float] = []  # per batch: the share done at its end
        self._batch = -1
        self._done = 0.0  # the largest share reported: reports never go back
        self._batch_started = 0.0
        self._timed_s = 0.0
        self._timed_work = 0.0

    def plan(self, chunks: Sequence[dict[str, Any]], batch_size: int) -> None:
        """The batches the pipeline will decode: `batch_size` chunks at a time, in order."""
        self._works, self._ends = [], []
        for first in range(0, len(chunks), max(1, batch_size)):
            batch = chunks[first : first + batch_size]
            bounds = part_bounds(len(batch), self._parallel)
            self._works.append(
                max(sum(float(c["duration"]) for c in batch[a:b]) for a, b in bounds)
            )
            self._ends.append(self._share(_chunk_end_s(batch[-1])))

    def batch_started(self) -> None:
        """The next batch goes to the model: say what to expect, where a pace is known."""
        self._batch += 1
        self._batch_started = self._monotonic()
        if not 0 <= self._batch < len(self._works):
            return
        pace = self._job_pace() or self._pace.seconds_per_speech_s
        guessed = pace is None
        if pace is None:
            pace = self._pace.prior()
        self._on_progress(
            self._done,
            Estimate(
                until=self._ends[self._batch],
                until_s=pace * self._works[self._batch],
                total_s=pace * sum(self._works[self._batch :]),
                guessed=guessed,
            ),
        )

    def chunks_done(self, chunks: Sequence[dict[str, Any]]) -> None:
        """Chunks segmented and aligned: the audio up to the last one's end is done."""
        if chunks:
            self._advance(self._share(_chunk_end_s(chunks[-1])))

    def batch_finished(self) -> None:
        """The batch is decoded: time it, for the batches after it and the next file."""
        if not 0 <= self._batch < len(self._works) or self._works[self._batch] <= 0:
            return
        self._timed_s += self._monotonic() - self._batch_started
        self._timed_work += self._works[self._batch]
        pace = self._job_pace()
        if pace is not None:
            self._pace.record(pace)

    def segment_done(self, end_s: float) -> None:
        """A segment yielded: the audio up to its end is done."""
        self._advance(self._share(end_s))

    def _advance(self, share: float) -> None:
        # A batch's segments end before the end of its last chunk, told a moment earlier.
        if share > self._done:
            self._done = share
            self._on_progress(share)

    def _job_pace(self) -> float | None:
        return self._timed_s / self._timed_work if self._timed_work > 0 else None

    def _share(self, seconds: float) -> float:
        if self._duration_s <= 0:
            return 0.0
        return max(0.0, min(BEFORE_DONE, seconds / self._duration_s))


class _Stretch(msgspec.Struct, frozen=True):
    start: float
    end: float
    since: float
    span_s: float


class ProgressTicker:
    """Moves a running job's share toward the end of its batch at the expected pace.

    Lives on the event loop: `expect` records an `Estimate` as it arrives; `run` (a
    task, started at the first estimate) calls `move` with the share it implies every
    `TICK_S` of the clock, at most `SPAN_CAP` of the way into the batch.
    """

    def __init__(self, clock: Clock, move: Callable[[float], None]) -> None:
        self._clock = clock
        self._move = move
        self._stretch: _Stretch | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def stopped(self) -> bool:
        """Whether the job's decoding ended (a late report changes nothing then)."""
        return self._stopped

    def expect(self, fraction: float, estimate: Estimate) -> None:
        """From now, `fraction` moves toward `estimate.until` over `estimate.until_s`."""
        if self._stopped:
            return
        self._stretch = _Stretch(
            start=fraction,
            end=max(fraction, estimate.until),
            since=self._clock.monotonic(),
            span_s=max(estimate.until_s, 1e-3),
        )
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    def current(self) -> float | None:
        """The share the latest estimate implies now (None without one)."""
        stretch = self._stretch
        if stretch is None:
            return None
        elapsed = self._clock.monotonic() - stretch.since
        way = min(SPAN_CAP, max(0.0, elapsed / stretch.span_s))
        return stretch.start + (stretch.end - stretch.start) * way

    async def run(self) -> None:
        """Move the share every `TICK_S` until stopped."""
        while True:
            await self._clock.sleep(TICK_S)
            share = self.current()
            if share is not None:
                self._move(share)

    def stop(self) -> None:
        """The job's decoding ended: no more moves, for good."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._stretch = None
