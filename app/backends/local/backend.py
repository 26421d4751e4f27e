"""The one-process backend: the in-memory queue and store behind the service's async seam."""

from __future__ import annotations

from app.backends.base import QueueCounts, QueueFullError
from app.backends.local.queue import MemoryJobQueue
from app.backends.local.store import MemoryTaskStore
from app.transcription.jobs import Job, Payload

__all__ = ["LocalBackend"]

# One process needs no tokens: a held place is a count in the queue.
_PLACE = "local"


class LocalBackend:
    """`TaskBackend` over this process's queue and task store; every step is instant.

    `queue` is also the worker's `JobSource`; both parts are public for the
    composition root and for tests that look inside.
    """

    def __init__(self, queue: MemoryJobQueue, store: MemoryTaskStore) -> None:
        self.queue = queue
        self.store = store

    @property
    def max_waiting(self) -> int:
        """The queue's bound on waiting jobs."""
        return self.queue.max_waiting

    def running_here(self) -> list[Job]:
        """Every running job: the worker runs in this process."""
        return self.queue.running

    async def fail_waiting_here(self, reason: str) -> int:
        """Every waiting job: they are kept in this process's memory only."""
        return self.queue.drain(reason)

    async def reserve(self, expected_bytes: int, client: str | None = None) -> str:
        """Check the local queue has room now (for `client` too); the place is taken by `submit`.

        In one process a body still arriving holds an upload place (MAX_UPLOADS_IN_FLIGHT),
        not a queue place, so slow clients cannot make the queue look full.
        """
        if not self.queue.has_room(expected_bytes):
            full = self.queue.waiting >= self.queue.max_waiting
            raise QueueFullError("jobs" if full else "bytes")
        if not self.queue.client_has_room(client):
            raise QueueFullError("client")
        return _PLACE

    async def release(self, place: str) -> None:
        """Nothing is held before `submit`."""

    async def submit(self, place: str, job: Job, payload: Payload) -> None:
        """Queue the job, then keep its record."""
        self.queue.submit(job, payload)
        self.store.add(job)

    async def keep(self, job: Job) -> None:
        """Keep the record and start its expiry clock."""
        self.store.add(job)
        self.store.mark_final(job)

    async def get(self, task_id: str, *, owner: str | None) -> Job | None:
        """The store's answer."""
        return self.store.get(task_id, owner=owner)

    async def position(self, job: Job) -> int | None:
        """The queue's answer."""
        return self.queue.position(job)

    async def cancel(self, job: Job, reason: str) -> bool:
        """The queue fails or stops the job."""
        return self.queue.cancel(job, reason)

    async def delete(self, task_id: str) -> Job | None:
        """The store forgets the task."""
        return self.store.delete(task_id)

    def mark_final(self, job: Job) -> None:
        """The store starts the expiry clock."""
        self.store.mark_final(job)

    async def sweep(self) -> int:
        """The store removes expired tasks."""
        return self.store.sweep()

    def counts(self) -> QueueCounts:
        """Counted from the local queue."""
        return QueueCounts(
            waiting=self.queue.waiting,
            running=len(self.queue.running),
            waiting_bytes=self.queue.waiting_bytes,
            clients=len(self.queue.clients),
            most_per_client=self.queue.clients.most,
        )

    async def check(self) -> str | None:
        """A local queue always answers."""
        return None

    async def start(self) -> None:
        """Nothing runs in the background."""

    async def close(self) -> None:
        """Nothing to close."""
