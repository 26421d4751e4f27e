"""The small value types of the intake: a held queue place, and the service's snapshots
(its status for the status routes, its state for the metrics)."""

from __future__ import annotations

import collections
from dataclasses import dataclass

from app.backends.base import FleetWorker, TaskBackend
from app.observability.metrics import StateSnapshot
from app.transcription.jobs import Job, Payload
from app.transcription.models import ModelManager

__all__ = ["Reservation", "ServiceStatus", "metrics_snapshot", "service_status"]


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


def service_status(
    models: ModelManager, backend: TaskBackend, *, worker_running: bool, draining: bool
) -> ServiceStatus:
    """The status of a service with these models and this backend."""
    counts = backend.counts()
    return ServiceStatus(
        # In a cluster the workers are other processes that registered in Redis.
        worker_running=worker_running or bool(counts.workers),
        loading_model=models.loading,
        loaded_models=models.loaded_models,
        last_loaded_model=models.last_loaded,
        target_model=models.target,
        max_model=models.cap,
        device=models.placement.device,
        compute_type=models.placement.compute_type,
        waiting_jobs=counts.waiting,
        running_jobs=counts.running,
        max_queue_size=backend.max_waiting,
        draining=draining,
        workers=counts.workers,
    )


def metrics_snapshot(
    models: ModelManager, backend: TaskBackend, *, draining: bool
) -> StateSnapshot:
    """The state the metrics read at each scrape (counts only: no ids, no addresses)."""
    counts = backend.counts()
    return StateSnapshot(
        queue_depth=counts.waiting,
        running_jobs=counts.running,
        draining=draining,
        device=models.placement.device,
        loaded_models=models.loaded_models,
        load_seconds=dict(models.load_seconds),
        loading_model=models.loading,
        workers_by_device=dict(collections.Counter(worker.device for worker in counts.workers)),
        load_counts=dict(models.load_counts),
        unload_counts=dict(models.unload_counts),
        queue_clients=counts.clients,
        queue_most_per_client=counts.most_per_client,
    )
