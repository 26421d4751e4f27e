"""The small value types of the intake: a held queue place and the service's status snapshot."""

from __future__ import annotations

from dataclasses import dataclass

from app.backends.base import FleetWorker, TaskBackend
from app.transcription.jobs import Job, Payload

__all__ = ["Reservation", "ServiceStatus"]


class Reservation:
    """A place in the queue held for one upload while its body is read and probed."""

    def __init__(self, backend: TaskBackend, place: str) -> None:
        self._backend = backend
        self._place = place
        self._held = True

    @property
    def held(self) -> bool:
        """Whether the place is still free for a job."""
        return self._held

    async def use(self, job: Job, payload: Payload) -> None:
        """Queue `job` in the held place (QueueFullError when its bytes do not fit)."""
        if not self._held:
            raise RuntimeError("this queue place was already used or released")
        await self._backend.submit(self._place, job, payload)
        self._held = False

    async def release(self) -> None:
        """Give the place back if no job took it."""
        if self._held:
            self._held = False
            await self._backend.release(self._place)


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """What /api/v1/decoder_status and readiness report."""

    worker_running: bool
    loading_model: str | None
    loaded_models: list[str]
    last_loaded_model: str | None
    target_model: str
    max_model: str | None
    device: str
    compute_type: str
    waiting_jobs: int
    running_jobs: int
    max_queue_size: int
    draining: bool = False
    # A cluster's workers (QUEUE_BACKEND=redis); empty in one process.
    workers: tuple[FleetWorker, ...] = ()
