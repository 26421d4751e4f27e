"""Helpers shared by the queue, worker and job tests: a fake clock, jobs, a worker rig."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from app.backends.local.queue import MemoryJobQueue
from app.transcription.engine import ProgressCallback, SegmentCallback, StopCheck
from app.transcription.jobs import Job, JobNotifier
from app.transcription.types import TaskType, TranscribeOptions, Transcript
from app.transcription.worker import Worker, WorkerLimits
from tests.conftest import FakeTranscriber, fake_manager, make_settings

FINAL_TIMEOUT_S = 5


class FakeClock:
    """A clock that moves only when the test says so.

    `sleep` waits until the test has advanced the time past its deadline; with
    `autoadvance`, a sleep moves the time itself (for code that only polls).
    """

    def __init__(self, *, autoadvance: bool = True) -> None:
        self.time = 1000.0
        self.start = datetime(2026, 1, 1, tzinfo=UTC)
        self.autoadvance = autoadvance
        self._moved = asyncio.Event()

    def monotonic(self) -> float:
        """The fake time."""
        return self.time

    def now(self) -> datetime:
        """A wall clock that moves with the fake time."""
        return self.start + timedelta(seconds=self.time - 1000.0)

    async def sleep(self, seconds: float) -> None:
        """Return once the fake time has passed `seconds` from now."""
        if self.autoadvance:
            self.time += seconds
            await asyncio.sleep(0)
            return
        deadline = self.time + seconds
        while self.time < deadline:
            self._moved = asyncio.Event() if self._moved.is_set() else self._moved
            await self._moved.wait()

    def advance(self, seconds: float) -> None:
        """Move the fake time forward and wake the sleepers whose time has come."""
        self.time += seconds
        self._moved.set()


def pcm(seconds: float = 1.0, level: float = 0.01) -> bytes:
    """Raw 16 kHz s16le PCM of a constant quiet level (not digital silence unless level=0)."""
    return np.full(int(16000 * seconds), int(level * 32767), dtype="<i2").tobytes()


def make_job(
    prompt: str | None = None,
    *,
    language: str | None = "en",
    seconds: float = 1.0,
    task_type: TaskType = "transcribe",
    **options: Any,
) -> Job:
    """A job of `seconds` of raw PCM; `prompt` tells the routing transcriber what to do."""
    return Job(
        task_type=task_type,
        options=TranscribeOptions(language=language, initial_prompt=prompt, **options),
        time_uploaded=datetime.now(UTC),
        raw_pcm=True,
        audio_duration=seconds,
    )


def new_queue(
    max_waiting: int = 8,
    max_waiting_bytes: int = 1 << 30,
    clock: FakeClock | None = None,
    **linger: Any,
) -> MemoryJobQueue:
    """A queue with its own notifier (`linger`: uploads_in_flight, max_linger_s)."""
    return MemoryJobQueue(
        max_waiting=max_waiting,
        max_waiting_bytes=max_waiting_bytes,
        notifier=JobNotifier(),
        clock=clock or FakeClock(),
        **linger,
    )


def enqueue(queue: MemoryJobQueue, job: Job, payload: bytes | None = None) -> None:
    """Queue `job` with its PCM (made from its duration if not given)."""
    queue.submit(job, payload if payload is not None else pcm(job.audio_duration))


def notifier_of(queue: MemoryJobQueue) -> JobNotifier:
    """The notifier a queue made by `new_queue` wakes."""
    notifier: JobNotifier = queue._notifier
    return notifier


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

    queue: MemoryJobQueue
    worker: Worker
    transcriber: FakeTranscriber
    gate: threading.Event
    done: list[Job]

    @property
    def notifier(self) -> JobNotifier:
        """The notifier the queue and the worker share."""
        return notifier_of(self.queue)

    async def final(self, job: Job) -> Job:
        """Wait until `job` is finished or failed."""
        await asyncio.wait_for(self.notifier.wait_until_final(job), FINAL_TIMEOUT_S)
        return job


def start_rig(
    transcriber: FakeTranscriber,
    *,
    gate: threading.Event | None = None,
    available: set[str] | None = None,
    settings: Any = None,
    clock: Any = None,
    **limits: Any,
) -> Rig:
    """A started worker on a fresh queue (the caller stops it)."""
    settings = settings or make_settings(cpu_fallback_model="base")
    queue = new_queue()
    done: list[Job] = []
    worker = Worker(
        queue,
        fake_manager(settings, transcriber, available=available),
        notifier=notifier_of(queue),
        clock=clock or FakeClock(),
        limits=WorkerLimits(**limits),
        on_job_done=done.append,
    )
    worker.start()
    return Rig(queue, worker, transcriber, gate or threading.Event(), done)


async def wait_until(
    notifier: JobNotifier, job: Job, predicate: Callable[[], bool], limit_s: float = 2.0
) -> None:
    """Wake on each change of `job` until `predicate` holds; fail after `limit_s` seconds."""

    async def watch() -> None:
        while True:
            token = notifier.token(job)
            if predicate():
                return
            await token.wait()

    try:
        await asyncio.wait_for(watch(), limit_s)
    except TimeoutError:
        pytest.fail("condition not met in time")
