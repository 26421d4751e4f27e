"""Counting jobs in the metrics exactly once, and the recent job times behind Retry-After."""

from __future__ import annotations

import statistics
from collections import deque

from app.observability.metrics import FinalStatus, ServiceMetrics
from app.transcription.jobs import Job, JobStatus

__all__ = ["JobAccounting"]

DEFAULT_JOB_SECONDS = 10.0


class JobAccounting:
    """Jobs not yet counted, those their client cancelled, and how long recent jobs took."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics
        self._unsettled: dict[str, Job] = {}
        self._cancelled: set[str] = set()
        self._recent_seconds: deque[float] = deque(maxlen=20)

    def track(self, job: Job) -> None:
        """A job was queued: count it once it ends."""
        self._unsettled[job.id] = job

    def cancelled(self, job: Job) -> None:
        """Its client or owner cancelled the job (a waiting one is final at once)."""
        self._cancelled.add(job.id)
        self.settle(job)

    def settle(self, job: Job) -> None:
        """Count a job once, when it has reached its final status."""
        if not job.is_final or self._unsettled.pop(job.id, None) is None:
            return
        status: FinalStatus = "failed"
        if job.status is JobStatus.FINISHED:
            status = "finished"
            if job.processing_duration is not None:
                self._recent_seconds.append(job.processing_duration)
        elif job.id in self._cancelled:
            status = "cancelled"
        self._cancelled.discard(job.id)
        self._metrics.job_final(
            surface=job.surface,
            task_type=job.task_type,
            status=status,
            audio_seconds=job.audio_duration,
            processing_seconds=job.processing_duration,
            model=job.used_model,
            device=job.used_device,
            wait_seconds=_waited_s(job),
        )

    def settle_all(self) -> None:
        """Count every tracked job that has ended (e.g. before a scrape)."""
        for job in list(self._unsettled.values()):
            self.settle(job)

    def retry_after_s(self) -> int:
        """A fair guess of when a queue place frees up: the mean of recent jobs' times."""
        recent = self._recent_seconds
        per_job = statistics.fmean(recent) if recent else DEFAULT_JOB_SECONDS
        return max(1, round(per_job))


def _waited_s(job: Job) -> float | None:
    """Seconds between upload and a worker starting the job; None for a job never started."""
    if job.time_processing_started is None:
        return None
    return (job.time_processing_started - job.time_uploaded).total_seconds()
