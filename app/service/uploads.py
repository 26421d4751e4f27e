"""Uploads in flight: bodies still arriving, counted and timed apart from the queue.

A waiting job is an upload that has fully arrived and been probed; an upload in
flight is a connection still sending its body. They are bounded separately:
`MAX_UPLOADS_IN_FLIGHT` connections may be sending at once, each within
`UPLOAD_TIMEOUT_S`, and only finished uploads take a place in the queue
(`MAX_TASK_QUEUE_SIZE`). So clients that trickle a byte every few seconds, or
declare a Content-Length they never send, hold one of a few upload places for
a bounded time, and never make the queue look full to everybody else.

One client (its API key, else its address) holds at most
`MAX_UPLOADS_IN_FLIGHT_PER_CLIENT` of those places, and every body keeps a
pace (`BodyPace`): no pause longer than `UPLOAD_IDLE_TIMEOUT_S` between two
reads, and at least `UPLOAD_MIN_RATE_BPS` on average once
`UPLOAD_RATE_GRACE_S` is over. A trickle ends with 408 well before the
overall limit, and frees its place at once.

Framework-free: the HTTP intake wraps its body read in `UploadGate.receive`.
On shutdown every body still arriving is abandoned at once (503), rather than
left to run into the server's own connection timeout.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from app.clock import Clock

__all__ = [
    "BodyPace",
    "PaceRules",
    "TooManyClientUploadsError",
    "TooManyUploadsError",
    "UploadAbandonedError",
    "UploadGate",
    "UploadIdleError",
    "UploadTimeoutError",
    "UploadTooSlowError",
]

T = TypeVar("T")


class TooManyUploadsError(Exception):
    """MAX_UPLOADS_IN_FLIGHT bodies are already arriving: 429, try again shortly."""

    def __init__(self, limit: int, retry_after_s: int) -> None:
        super().__init__(
            f"too many uploads in progress ({limit} at once); try again in about {retry_after_s} s"
        )
        self.retry_after_s = retry_after_s


class UploadTimeoutError(Exception):
    """The body did not arrive within UPLOAD_TIMEOUT_S: 408, and the connection is closed."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            f"the upload did not arrive within this server's limit of {timeout_s:g} s; "
            "send the whole body sooner (or ask for a higher UPLOAD_TIMEOUT_S)"
        )


class TooManyClientUploadsError(TooManyUploadsError):
    """This client already sends MAX_UPLOADS_IN_FLIGHT_PER_CLIENT bodies: 429."""

    def __init__(self, limit: int, retry_after_s: int) -> None:
        Exception.__init__(
            self,
            f"too many uploads in progress from this client ({limit} at once, "
            f"MAX_UPLOADS_IN_FLIGHT_PER_CLIENT); try again in about {retry_after_s} s",
        )
        self.retry_after_s = retry_after_s


class UploadIdleError(UploadTimeoutError):
    """Nothing of the body arrived for UPLOAD_IDLE_TIMEOUT_S: 408, the connection is closed."""

    def __init__(self, idle_s: float) -> None:
        Exception.__init__(
            self,
            f"the upload stalled: nothing arrived for {idle_s:g} s (UPLOAD_IDLE_TIMEOUT_S)",
        )


class UploadTooSlowError(UploadTimeoutError):
    """The body averaged less than UPLOAD_MIN_RATE_BPS after the grace: 408, closed."""

    def __init__(self, min_rate_bps: int) -> None:
        Exception.__init__(
            self,
            f"the upload arrives too slowly: below this server's minimum of {min_rate_bps} "
            "bytes per second on average (UPLOAD_MIN_RATE_BPS)",
        )


class UploadAbandonedError(Exception):
    """The server began shutting down while this body was still arriving."""


@dataclass(frozen=True, slots=True)
class PaceRules:
    """How fast a body must come: the longest pause, and the least average after a grace."""

    idle_timeout_s: float = math.inf
    min_rate_bps: int = 0
    grace_s: float = 0.0


class BodyPace:
    """The pace of one body as it arrives: the read reports each chunk to `arrived`."""

    def __init__(self, rules: PaceRules, clock: Clock) -> None:
        self._rules = rules
        self._clock = clock
        self.started = clock.monotonic()
        self.last_read = self.started
        self.received = 0

    def arrived(self, size: int) -> None:
        """A chunk of `size` bytes has been read."""
        self.received += size
        self.last_read = self._clock.monotonic()

    def idle_deadline(self) -> float:
        """When the body has paused too long, unless more arrives first."""
        return self.last_read + self._rules.idle_timeout_s

    def rate_deadline(self) -> float:
        """When the average falls below the minimum rate (never before the grace is over)."""
        if self._rules.min_rate_bps <= 0:
            return math.inf
        below_at = self.started + self.received / self._rules.min_rate_bps
        return max(self.started + self._rules.grace_s, below_at)

    def broken_rule(self, now: float) -> UploadTimeoutError | None:
        """The error of the first rule the body breaks at `now`, else None."""
        if now >= self.idle_deadline():
            return UploadIdleError(self._rules.idle_timeout_s)
        if now >= self.rate_deadline():
            return UploadTooSlowError(self._rules.min_rate_bps)
        return None


class UploadGate:
    """At most `limit` bodies arriving at once (`per_client` of one client), each at a pace.

    A body ends with 408 when it takes longer than `timeout_s` in all, pauses
    longer than the pace's idle timeout, or averages less than its minimum rate
    after the grace; its place is freed at once.
    """

    def __init__(
        self,
        *,
        limit: int,
        timeout_s: float,
        clock: Clock,
        per_client: int | None = None,
        pace: PaceRules | None = None,
    ) -> None:
        self.limit = limit
        self.per_client = per_client or limit
        self.timeout_s = timeout_s
        self.pace_rules = pace or PaceRules()
        self._clock = clock
        self._in_flight = 0
        self._by_client: collections.Counter[str] = collections.Counter()
        self._closing = asyncio.Event()

    @property
    def in_flight(self) -> int:
        """Uploads whose bodies are arriving (or being probed) now."""
        return self._in_flight

    def close(self) -> None:
        """Abandon every body still arriving (shutdown) and take no new ones."""
        self._closing.set()

    def pace(self) -> BodyPace:
        """A new body's pace, started now: hand its `arrived` to the body read."""
        return BodyPace(self.pace_rules, self._clock)

    @contextlib.asynccontextmanager
    async def place(self, client: str | None = None) -> AsyncIterator[None]:
        """Hold one of the `limit` upload places (and one of `client`'s) until queued or refused."""
        retry_after_s = max(1, round(self.timeout_s / 10))
        if self._in_flight >= self.limit:
            raise TooManyUploadsError(self.limit, retry_after_s=retry_after_s)
        if client is not None and self._by_client[client] >= self.per_client:
            raise TooManyClientUploadsError(self.per_client, retry_after_s=retry_after_s)
        self._in_flight += 1
        if client is not None:
            self._by_client[client] += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            if client is not None:
                self._by_client[client] -= 1
                if self._by_client[client] <= 0:
                    del self._by_client[client]

    async def receive(self, body: Awaitable[T], pace: BodyPace | None = None) -> T:
        """Await `body` (the body read) within the limits; abandoned at once on shutdown.

        Raises UploadTimeoutError (or UploadIdleError, UploadTooSlowError when a
        `pace` is given and the read reports to it) when a limit passes first, and
        UploadAbandonedError when the gate closes first; the read is cancelled.
        """
        read = asyncio.ensure_future(body)
        closing = asyncio.ensure_future(self._closing.wait())
        give_up = self._clock.monotonic() + self.timeout_s
        try:
            while True:
                now = self._clock.monotonic()
                broken = pace.broken_rule(now) if pace is not None else None
                if broken is not None:
                    raise broken
                if now >= give_up:
                    raise UploadTimeoutError(self.timeout_s)
                # Chunks only move the pace's deadlines later: look again at the earliest.
                wake_at = give_up
                if pace is not None:
                    wake_at = min(give_up, pace.idle_deadline(), pace.rate_deadline())
                if await self._wait(read, closing, wake_at - now):
                    break
        finally:
            for waiter in (closing, read):
                if not waiter.done():
                    waiter.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await waiter
        if read.done() and not read.cancelled():
            return read.result()
        raise UploadAbandonedError  # the gate closed while the body was still arriving

    async def _wait(
        self, read: asyncio.Future[T], closing: asyncio.Future[Any], seconds: float
    ) -> bool:
        """Wait for the read, the gate closing or `seconds`; True when the read is over."""
        timer = asyncio.ensure_future(self._clock.sleep(max(0.0, seconds)))
        waiters: set[asyncio.Future[Any]] = {read, closing, timer}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not timer.done():
                timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await timer
        return read.done() or closing.done()
