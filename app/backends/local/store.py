"""Where the tasks of one process live until they expire: a dict with deadlines on a clock.

A finished or failed task expires DELETE_RESULTS_AFTER_M minutes after it ended,
or after its owner last read it when REFRESH_EXPIRATION_TIME_ON_USAGE is on. A
sweeper removes expired tasks every RUN_RESULT_EXPIRY_CHECK_M minutes; with 0
they are removed when somebody asks for them. Either way an expired task reads
as unknown, and its content is erased from memory.
"""

from __future__ import annotations

import structlog

from app.clock import Clock
from app.transcription.jobs import Job

__all__ = ["MemoryTaskStore"]

log = structlog.get_logger(__name__)


class MemoryTaskStore:
    """Tasks by id, each final one with its expiry deadline on the given clock."""

    def __init__(self, *, ttl_s: float, refresh_on_read: bool, clock: Clock) -> None:
        self._ttl_s = ttl_s
        self._refresh_on_read = refresh_on_read
        self._clock = clock
        self._tasks: dict[str, Job] = {}

    def __len__(self) -> int:
        """How many tasks are kept now."""
        return len(self._tasks)

    def add(self, job: Job) -> None:
        """Keep a new task; it cannot expire before it has ended."""
        self._tasks[job.id] = job

    def get(self, task_id: str, *, owner: str | None) -> Job | None:
        """Look up `owner`'s task, expiring it lazily and refreshing it on the owner's read."""
        job = self._tasks.get(task_id)
        if job is None:
            return None
        if self._expired(job):
            self._remove(job)
            return None
        if job.owner != owner:
            return None  # exactly like an unknown id, and its expiry is left alone
        if job.is_final and self._refresh_on_read:
            job.expires_at = self._clock.monotonic() + self._ttl_s
        return job

    def delete(self, task_id: str) -> Job | None:
        """Forget a task now."""
        job = self._tasks.pop(task_id, None)
        if job is not None:
            job.erase_content()
        return job

    def sweep(self) -> int:
        """Remove every expired task."""
        expired = [job for job in self._tasks.values() if self._expired(job)]
        for job in expired:
            self._remove(job)
        if expired:
            log.info("results_expired", count=len(expired), remaining=len(self._tasks))
        return len(expired)

    def mark_final(self, job: Job) -> None:
        """Start the expiry clock of a task that has just ended."""
        job.expires_at = self._clock.monotonic() + self._ttl_s

    def _expired(self, job: Job) -> bool:
        if not job.is_final:
            return False
        if job.expires_at is None:
            job.expires_at = self._clock.monotonic() + self._ttl_s
        return self._clock.monotonic() >= job.expires_at

    def _remove(self, job: Job) -> None:
        self._tasks.pop(job.id, None)
        job.erase_content()
