"""The async seam between the service and wherever jobs live, and the fleet snapshot it reports.

In one process the queue and the store answer at once; in a cluster every step
is a round trip to Redis. The service therefore awaits each step through this
Protocol. `app.backends.local` implements it over the in-memory queue and store
of this process, `app.backends.redis` over the cluster's Redis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from app.transcription.jobs import Job, Payload

__all__ = [
    "JOB_LOST_REASON",
    "BackendUnavailableError",
    "ClientQueueFullError",
    "FleetWorker",
    "QueueCounts",
    "QueueFullError",
    "TaskBackend",
]


# The reason a job fails with when the shared backend lost it (Redis restarted empty, a
# failover to a replica that had not seen it): the client is told to upload it again.
JOB_LOST_REASON = (
    "the job queue (Redis) lost this job (it restarted or failed over); please upload it again"
)


class BackendUnavailableError(Exception):
    """The shared backend (Redis) does not answer: uploads get 503 with `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QueueFullError(Exception):
    """No room: MAX_TASK_QUEUE_SIZE waiting jobs, or MAX_QUEUED_MB of waiting uploads.

    `limit` "client": this client already has MAX_QUEUED_PER_CLIENT waiting jobs.
    """

    def __init__(
        self,
        limit: Literal["jobs", "bytes", "client"] = "jobs",
        message: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message or f"the queue is full ({limit})")
        self.limit = limit
        self.retry_after_s = retry_after_s


class ClientQueueFullError(QueueFullError):
    """This client already has MAX_QUEUED_PER_CLIENT waiting jobs (the others still have room)."""


@dataclass(frozen=True, slots=True)
class FleetWorker:
    """One worker process as it registered itself (cluster mode)."""

    name: str
    device: str
    models: tuple[str, ...]
    batch_size: int
    running_jobs: int


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """The queue as a whole: waiting and running jobs, bytes held, and the workers alive.

    `clients`: how many clients have waiting jobs; `most_per_client`: the most
    waiting jobs of one client (counts only: no client is named).
    """

    waiting: int
    running: int
    waiting_bytes: int
    workers: tuple[FleetWorker, ...] = field(default=())
    clients: int = 0
    most_per_client: int = 0


class TaskBackend(Protocol):
    """What the service needs of the queue and the task store, each step awaited."""

    @property
    def max_waiting(self) -> int:
        """The bound on waiting jobs (MAX_TASK_QUEUE_SIZE), for status and refusals."""
        ...

    def running_here(self) -> list[Job]:
        """The jobs a worker of this process is running now."""
        ...

    async def fail_waiting_here(self, reason: str) -> int:
        """Fail the waiting jobs that end with this process (shutdown); returns how many."""
        ...

    async def reserve(self, expected_bytes: int, client: str | None = None) -> str:
        """Hold a queue place before an upload's body is read; QueueFullError when none.

        Also QueueFullError("client") when `client` (a hash, never an address or
        a key) already has MAX_QUEUED_PER_CLIENT waiting jobs. Returns the place's
        token for `submit` or `release`.
        """
        ...

    async def release(self, place: str) -> None:
        """Give back a held place that no job took."""
        ...

    async def submit(self, place: str, job: Job, payload: Payload) -> None:
        """Queue `job` with its upload in the held place and keep its record.

        QueueFullError when its bytes do not fit, QueueFullError("client") when
        `job.client` already has MAX_QUEUED_PER_CLIENT waiting jobs.
        """
        ...

    async def keep(self, job: Job) -> None:
        """Store a job that is already final (a kept live session); it expires as usual."""
        ...

    async def get(self, task_id: str, *, owner: str | None) -> Job | None:
        """`owner`'s task (refreshing its expiry on the owner's read), else None."""
        ...

    async def position(self, job: Job) -> int | None:
        """0 while running, 1.. while waiting, None once it has left the queue.

        While waiting: 1 + the jobs that will start before it, in the queue's order
        (QUEUE_POLICY: round-robin across clients, or first in first out).
        """
        ...

    async def cancel(self, job: Job, reason: str) -> bool:
        """Fail a waiting job at once, or ask a running one to stop; False if already over."""
        ...

    async def delete(self, task_id: str) -> Job | None:
        """Forget a task now (its content erased); returns it if it was there."""
        ...

    def mark_final(self, job: Job) -> None:
        """Start the expiry clock of a job that a worker of this process has just ended."""
        ...

    async def sweep(self) -> int:
        """Remove expired tasks; returns how many."""
        ...

    def counts(self) -> QueueCounts:
        """The latest known state of the queue (kept current without a round trip)."""
        ...

    async def check(self) -> str | None:
        """None when the backend answers, else why not (for /readyz)."""
        ...

    async def start(self) -> None:
        """Begin background work (following changes, counting)."""
        ...

    async def close(self) -> None:
        """End background work and connections."""
        ...
