"""The one-process backend: the in-memory queue and store behind the service's async seam."""

from __future__ import annotations

from app.backends.base import QueueCounts, QueueFullError
from app.backends.local.queue import JobQueue
from app.backends.local.store import TaskStore
from app.transcription.jobs import Job, Payload

__all__ = ["LocalBackend"]

# One process needs no tokens: a held place is a count in the queue.
_PLACE = "local"


class LocalBackend:
    """`TaskBackend` over a `JobQueue` and a `TaskStore` of this process; every step is instant."""

    def __init__(self, queue: JobQueue, store: TaskStore) -> None:
        self._queue = queue
        self._store = store

    async def reserve(self, expected_bytes: int) -> str:
        """Check the local queue has room now; the place is taken by `submit`.

        In one process a body still arriving holds an upload place (MAX_UPLOADS_IN_FLIGHT),
        not a queue place, so slow clients cannot make the queue look full.
        """
        if not self._queue.has_room(expected_bytes):
            full = self._queue.waiting >= self._queue.max_waiting
            raise QueueFullError("jobs" if full else "bytes")
        return _PLACE

    async def release(self, place: str) -> None:
        """Nothing is held before `submit`."""

    async def submit(self, place: str, job: Job, payload: Payload) -> None:
        """Queue the job, then keep its record."""
        self._queue.submit(job, payload)
        self._store.add(job)

    async def keep(self, job: Job) -> None:
        """Keep the record and start its expiry clock."""
        self._store.add(job)
        self._store.mark_final(job)

    async def get(self, task_id: str, *, owner: str | None) -> Job | None:
        """The store's answer."""
        return self._store.get(task_id, owner=owner)

    async def position(self, job: Job) -> int | None:
        """The queue's answer."""
        return self._queue.position(job)

    async def cancel(self, job: Job, reason: str) -> bool:
        """The queue fails or stops the job."""
        return self._queue.cancel(job, reason)

    async def delete(self, task_id: str) -> Job | None:
        """The store forgets the task."""
        return self._store.delete(task_id)

    async def mark_final(self, job: Job) -> None:
        """The store starts the expiry clock."""
        self._store.mark_final(job)

    async def sweep(self) -> int:
        """The store removes expired tasks."""
        return self._store.sweep()

    def counts(self) -> QueueCounts:
        """Counted from the local queue."""
        return QueueCounts(
            waiting=self._queue.waiting,
            running=len(self._queue.running),
            waiting_bytes=self._queue.waiting_bytes,
        )

    async def check(self) -> str | None:
        """A local queue always answers."""
        return None

    async def start(self) -> None:
        """Nothing runs in the background."""

    async def close(self) -> None:
        """Nothing to close."""
