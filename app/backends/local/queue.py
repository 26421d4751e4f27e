"""The bounded queue of one process: waiting jobs with their uploads, and the running ones.

Waiting jobs hold the bytes that were uploaded, never decoded audio, and the
queue is bounded twice: by the number of waiting jobs (MAX_TASK_QUEUE_SIZE) and
by the bytes they hold (MAX_QUEUED_MB). Only uploads that have fully arrived
and been probed take a place: bodies still arriving are counted apart
(`app.service.uploads.UploadGate`), and one client holds at most
`max_per_client` waiting jobs. It is the worker's `JobSource` in one process:
`next_batch` hands out the next job in the queue's order (QUEUE_POLICY, see
`app.backends.fairness`) with the waiting jobs of any client that can share
its pass, lingering briefly while uploads are still arriving.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

from app.backends.base import QueueFullError
from app.backends.fairness import ClientRing, QueuePolicy, client_of, round_robin
from app.clock import Clock
from app.transcription.batching import pick_companions
from app.transcription.jobs import Job, JobNotifier, Payload, QueuedJob

__all__ = ["MAX_LINGER_S", "MemoryJobQueue"]

# How long a batch that has room waits for uploads still arriving: clients that send
# at the same moment land a few milliseconds apart.
MAX_LINGER_S = 0.5
LINGER_TICK_S = 0.01


class MemoryJobQueue:
    """The queue of one process: waiting jobs in arrival order, their clients, the running ones."""

    def __init__(
        self,
        *,
        max_waiting: int,
        max_waiting_bytes: int,
        notifier: JobNotifier,
        clock: Clock,
        uploads_in_flight: Callable[[], int] = lambda: 0,
        max_linger_s: float = MAX_LINGER_S,
        max_per_client: int | None = None,
        policy: QueuePolicy = "fair",
    ) -> None:
        self._max_waiting = max_waiting
        self._max_waiting_bytes = max_waiting_bytes
        self._max_per_client = max_per_client or max_waiting
        self._policy: QueuePolicy = policy
        self._clients = ClientRing()
        self._notifier = notifier
        self._clock = clock
        # Bodies still arriving (app.service.uploads): a batch with room lingers for them.
        self._uploads_in_flight = uploads_in_flight
        self._max_linger_s = max_linger_s
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

    @property
    def clients(self) -> ClientRing:
        """The clients with waiting jobs (counts only)."""
        return self._clients

    def has_room(self, expected_bytes: int = 0) -> bool:
        """Room for one more waiting job and for its bytes."""
        if len(self._waiting) >= self._max_waiting:
            return False
        return self._bytes_fit(expected_bytes)

    def client_has_room(self, client: str | None) -> bool:
        """Whether `client` may queue one more job (jobs that name no client are not bounded)."""
        return client is None or self._clients.waiting(client) < self._max_per_client

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
        if not self.client_has_room(job.client):
            raise QueueFullError("client")
        self._waiting.append(QueuedJob(job, payload))
        self._clients.added(client_of(job))
        self._waiting_bytes += len(payload)
        self._available.set()
        self._notify_waiting()  # a new client's job may go before others already waiting

    def position(self, job: Job) -> int | None:
        """0 while running, 1.. while waiting (1 + jobs that start before it), None after."""
        if job in self._running:
            return 0
        for index, entry in enumerate(self._start_order(), start=1):
            if entry.job is job:
                return index
        return None

    def _start_order(self) -> list[QueuedJob]:
        """The waiting jobs in the order they will start (batches aside)."""
        if self._policy == "fifo":
            return list(self._waiting)
        lines = self._clients.lines(self._waiting, lambda entry: client_of(entry.job))
        return list(round_robin(lines))

    def _next_entry(self) -> QueuedJob:
        """The job whose turn it is: the oldest (fifo), or the oldest of the next client (fair)."""
        if self._policy == "fifo":
            return self._waiting[0]
        turn = self._clients.order[0]
        return next(entry for entry in self._waiting if client_of(entry.job) == turn)

    async def next_batch(self, max_size: int, key: Callable[[Job], object]) -> list[QueuedJob]:
        """Wait for the next job in order, then add waiting jobs with the same non-None key.

        The next job always goes first, so no job waits behind more than one
        batch of later arrivals; jobs that cannot join keep their place. While
        uploads are still arriving and the batch has room, it waits up to
        `max_linger_s` for them to join; a lone request never waits.
        """
        while not self._waiting:
            self._available.clear()
            await self._available.wait()
        head = self._next_entry()
        self._waiting.remove(head)
        batch = [self._take(head, served=True)]
        self._top_up(batch, max_size, key)
        self._notify_waiting()  # everyone behind moved up
        if max_size > 1 and key(batch[0].job) is not None:
            try:
                await self._linger(batch, max_size, key)
            except asyncio.CancelledError:
                self._put_back(batch)  # the worker stops: these jobs have not started
                raise
        return batch

    def _put_back(self, batch: list[QueuedJob]) -> None:
        """Return a batch that never started to the head of the queue, in its order."""
        for entry in reversed(batch):
            self._running.remove(entry.job)
            self._waiting.appendleft(entry)
            self._clients.added(client_of(entry.job), first=True)
            self._waiting_bytes += len(entry.payload or b"")
        self._notify_waiting()

    async def _linger(
        self, batch: list[QueuedJob], max_size: int, key: Callable[[Job], object]
    ) -> None:
        """Let uploads still arriving join `batch`, until it is full or the linger is over."""
        deadline = self._clock.monotonic() + self._max_linger_s
        while len(batch) < max_size and self._uploads_in_flight() > 0:
            if self._clock.monotonic() >= deadline:
                return
            await self._clock.sleep(LINGER_TICK_S)
            self._top_up(batch, max_size, key)

    def _top_up(self, batch: list[QueuedJob], max_size: int, key: Callable[[Job], object]) -> None:
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

    def _take(self, entry: QueuedJob, *, served: bool = False) -> QueuedJob:
        self._clients.removed(client_of(entry.job), served=served)
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
                self._clients.removed(client_of(job))
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
        self._clients.clear()
        return count

    def _notify_waiting(self) -> None:
        for entry in self._waiting:
            self._notifier.notify(entry.job)
