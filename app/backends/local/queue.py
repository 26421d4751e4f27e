"""The bounded FIFO of one process: waiting jobs with their uploads, and the running ones.

Waiting jobs hold the bytes that were uploaded, never decoded audio, and the
queue is bounded twice: by the number of waiting jobs (MAX_TASK_QUEUE_SIZE) and
by the bytes they hold (MAX_QUEUED_MB). Only uploads that have fully arrived
and been probed take a place: bodies still arriving are counted apart
(`app.service.uploads.UploadGate`). The worker takes "the next jobs" from it
through `JobSource`, so a batching worker can ask for several.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

from app.backends.base import QueueFullError
from app.clock import Clock
from app.transcription.batching import pick_companions
from app.transcription.jobs import Job, JobNotifier, Payload, QueuedJob

__all__ = ["MemoryJobQueue"]


class MemoryJobQueue:
    """The queue of one process: a deque of waiting jobs and a list of running ones."""

    def __init__(
        self,
        *,
        max_waiting: int,
        max_waiting_bytes: int,
        notifier: JobNotifier,
        clock: Clock,
    ) -> None:
        self._max_waiting = max_waiting
        self._max_waiting_bytes = max_waiting_bytes
        self._notifier = notifier
        self._clock = clock
        self._waiting: collections.deque[QueuedJob] = collections.deque()
        self._waiting_bytes = 0
        self._running: list[Job] = []
        self._available = asyncio.Event()

    @property
    def max_waiting(self) -> int:
        """The bound on waiting jobs."""
        return self._max_waiting

    @property
    def waiting(self) -> int:
        """Jobs not yet started."""
        return len(self._waiting)

    @property
    def waiting_bytes(self) -> int:
        """Bytes of upload held by waiting jobs."""
        return self._waiting_bytes

    @property
    def running(self) -> list[Job]:
        """Jobs being transcribed now."""
        return list(self._running)

    def has_room(self, expected_bytes: int = 0) -> bool:
        """Room for one more waiting job and for its bytes."""
        if len(self._waiting) >= self._max_waiting:
            return False
        return self._bytes_fit(expected_bytes)

    def _bytes_fit(self, size: int) -> bool:
        # An upload larger than the whole byte bound (MAX_UPLOAD_MB > MAX_QUEUED_MB) could
        # never fit: it is taken when nothing else waits, instead of refused forever.
        return not self._waiting or self._waiting_bytes + size <= self._max_waiting_bytes

    def submit(self, job: Job, payload: Payload) -> None:
        """Queue `job` with its upload; QueueFullError when its place or bytes do not fit."""
        if len(self._waiting) >= self._max_waiting:
            raise QueueFullError("jobs")
        if not self._bytes_fit(len(payload)):
            raise QueueFullError("bytes")
        self._waiting.append(QueuedJob(job, payload))
        self._waiting_bytes += len(payload)
        self._available.set()

    def position(self, job: Job) -> int | None:
        """0 while running, 1.. while waiting, None once it has left the queue."""
        if job in self._running:
            return 0
        for index, entry in enumerate(self._waiting, start=1):
            if entry.job is job:
                return index
        return None

    async def next_batch(self, max_size: int, key: Callable[[Job], object]) -> list[QueuedJob]:
        """Wait for the oldest job, then add later waiting jobs with the same non-None key.

        The oldest job always goes first, so no job waits behind more than one
        batch of later arrivals; jobs that cannot join keep their place.
        """
        while not self._waiting:
            self._available.clear()
            await self._available.wait()
        batch = [self._take(self._waiting.popleft())]
        self.top_up(batch, max_size, key)
        self._notify_waiting()  # everyone behind moved up
        return batch

    def top_up(self, batch: list[QueuedJob], max_size: int, key: Callable[[Job], object]) -> None:
        """Move waiting jobs with the batch head's key into `batch`, up to `max_size`.

        Of those, the ones whose audio is closest in length to the head's join first
        (`pick_companions`): a batch shares one encoder pass per context length.
        """
        joined = pick_companions(
            batch[0],
            list(self._waiting),
            max_size - len(batch),
            key=lambda entry: key(entry.job),
            seconds=lambda entry: entry.job.audio_duration,
        )
        for entry in joined:
            self._waiting.remove(entry)
            batch.append(self._take(entry))
        if joined:
            self._notify_waiting()

    def _take(self, entry: QueuedJob) -> QueuedJob:
        self._waiting_bytes -= len(entry.payload or b"")
        self._running.append(entry.job)
        return entry

    def done(self, job: Job) -> None:
        """The worker has finished with `job`."""
        if job in self._running:
            self._running.remove(job)
        self._notify_waiting()

    def cancel(self, job: Job, reason: str) -> bool:
        """Cancel a waiting job at once, or ask a running one to stop; False if already over."""
        for entry in self._waiting:
            if entry.job is job:
                self._waiting.remove(entry)
                self._waiting_bytes -= len(entry.payload or b"")
                entry.payload = None
                job.fail(reason, self._clock.now())
                self._notifier.notify(job)
                self._notify_waiting()
                return True
        if job in self._running and not job.is_final:
            job.cancel_reason = job.cancel_reason or reason
            return True
        return False

    def drain(self, reason: str) -> int:
        """Fail every waiting job (shutdown); returns how many."""
        count = 0
        while self._waiting:
            entry = self._waiting.popleft()
            entry.payload = None
            entry.job.fail(reason, self._clock.now())
            self._notifier.notify(entry.job)
            count += 1
        self._waiting_bytes = 0
        return count

    def _notify_waiting(self) -> None:
        for entry in self._waiting:
            self._notifier.notify(entry.job)
