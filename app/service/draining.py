"""Shutting down without losing an answer: refuse uploads, fail waiting jobs, finish running ones.

Waiting jobs that end with this process (the memory backend keeps them in RAM
only) fail at once with a reason that asks to upload again, so their clients
learn it now rather than at the end of the grace period; a cluster's waiting
jobs stay in Redis for the other nodes. Jobs running here get SHUTDOWN_GRACE_S
to finish; those still running then are stopped (they fail with a reason) while
the server still answers, so every client of a job hears how it ended.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from app.backends.base import TaskBackend
from app.clock import Clock
from app.service.accounting import JobAccounting
from app.transcription.jobs import Job, JobNotifier, JobStatus

__all__ = ["SHUTDOWN_REASON", "Shutdown"]

log = structlog.get_logger(__name__)

SHUTDOWN_REASON = (
    "the server shut down before this job ran (waiting jobs are kept in memory only); "
    "please upload it again"
)
# While shutting down, how long a job that has just finished waits for its client
# to fetch it (clients that poll once a second, or the UI after its event stream).
RESULT_PICKUP_S = 5.0
# How often the wait for running jobs looks at the deadline (a second signal ends it).
GRACE_TICK_S = 0.1


class Shutdown:
    """The service's shutdown state and the drain that runs it.

    `stop_running` stops the jobs still running here once the grace is over
    (the worker's stop); None where this process runs no worker.
    """

    def __init__(
        self,
        *,
        grace_s: float,
        backend: TaskBackend,
        notifier: JobNotifier,
        clock: Clock,
        accounting: JobAccounting,
        stop_running: Callable[[], Awaitable[None]] | None,
    ) -> None:
        self._grace_s = grace_s
        self._backend = backend
        self._stop_running = stop_running
        self._notifier = notifier
        self._clock = clock
        self._accounting = accounting
        self.draining = False
        self._started = False
        self._deadline: float | None = None
        self._read_while_draining: set[str] = set()

    def begin(self) -> None:
        """Refuse new uploads from now on and start the grace period.

        Only sets attributes, so a signal handler may call it.
        """
        if self._deadline is None:
            self._deadline = self._clock.monotonic() + self._grace_s
        self.draining = True

    def end_grace(self) -> None:
        """Give running jobs no more time (a second signal); only sets attributes."""
        self.draining = True
        self._deadline = self._clock.monotonic()

    def read(self, job: Job) -> None:
        """A final job was read while draining: its client has its answer."""
        self._read_while_draining.add(job.id)

    async def drain(self, *, pickup: bool = False) -> None:
        """Refuse uploads, fail waiting jobs, let running jobs finish within the grace.

        Jobs still running when the grace is over are stopped here and fail with
        the reason. With `pickup` (the server still listens), a job that ended
        meanwhile waits a little for its client to fetch it. Safe to call more
        than once.
        """
        first, self._started = not self._started, True
        self.begin()
        failed = await self._backend.fail_waiting_here(SHUTDOWN_REASON)
        self._accounting.settle_all()
        running = [job for job in self._backend.running_here() if not job.is_final]
        if first or failed:
            # A warning only when the shutdown touches jobs; an idle stop is routine.
            (log.warning if failed or running else log.info)(
                "shutdown_draining",
                queued_jobs_failed=failed,
                running_jobs=len(running),
                grace_s=self._grace_s,
            )
        if not running:
            return
        await self._wait_for_running(running)
        overdue = [job for job in running if not job.is_final]
        if overdue and self._stop_running is not None:
            # The grace is over: stop them now, while event streams, pollers and
            # synchronous requests are still connected to hear that they failed.
            await self._stop_running()
            if pickup:
                await self.wait_for_pickup(overdue, self._clock.monotonic() + RESULT_PICKUP_S)
        elif pickup:
            until = self._clock.monotonic() + min(RESULT_PICKUP_S, self._grace_left_s())
            await self.wait_for_pickup([j for j in running if j.is_final], until)

    def _grace_left_s(self) -> float:
        assert self._deadline is not None  # set by begin
        return max(0.0, self._deadline - self._clock.monotonic())

    async def _wait_for_running(self, running: list[Job]) -> None:
        """Wait until the running jobs are final or the grace is over.

        The deadline is read again every tick, so `end_grace` (a second signal)
        cuts the wait short at once.
        """
        all_final = asyncio.ensure_future(
            asyncio.gather(*(self._notifier.wait_until_final(job) for job in running))
        )
        try:
            while not all_final.done() and self._grace_left_s() > 0:
                await asyncio.wait({all_final}, timeout=min(GRACE_TICK_S, self._grace_left_s()))
        finally:
            all_final.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await all_final
        left = sum(1 for job in running if not job.is_final)
        if left:
            log.warning("shutdown_grace_expired", running_jobs=left)
            return
        finished = sum(1 for job in running if job.status is JobStatus.FINISHED)
        log.info("shutdown_running_jobs_ended", finished=finished, failed=len(running) - finished)

    async def wait_for_pickup(self, ended: list[Job], until: float) -> None:
        """Keep answering a little longer, until the jobs that just ended were read.

        A client polling the task API (or the UI, after its event stream says
        "finished" or "failed") needs one more request to get the answer; without
        this pause the server would be gone by then. Ends early once every such
        job has been read, and at `until` (clock time) at the latest.
        """
        while any(job.id not in self._read_while_draining for job in ended):
            if self._clock.monotonic() >= until:
                return
            await self._clock.sleep(0.05)
