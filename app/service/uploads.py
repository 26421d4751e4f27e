"""Uploads in flight: bodies still arriving, counted and timed apart from the queue.

A waiting job is an upload that has fully arrived and been probed; an upload in
flight is a connection still sending its body. They are bounded separately:
`MAX_UPLOADS_IN_FLIGHT` connections may be sending at once, each within
`UPLOAD_TIMEOUT_S`, and only finished uploads take a place in the queue
(`MAX_TASK_QUEUE_SIZE`). So clients that trickle a byte every few seconds, or
declare a Content-Length they never send, hold one of a few upload places for
a bounded time, and never make the queue look full to everybody else.

Framework-free: the HTTP intake wraps its body read in `UploadGate.receive`.
On shutdown every body still arriving is abandoned at once (503), rather than
left to run into the server's own connection timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from app.clock import Clock

__all__ = ["TooManyUploadsError", "UploadAbandonedError", "UploadGate", "UploadTimeoutError"]

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


class UploadAbandonedError(Exception):
    """The server began shutting down while this body was still arriving."""


class UploadGate:
    """At most `limit` bodies arriving at once, each within `timeout_s` of the clock."""

    def __init__(self, *, limit: int, timeout_s: float, clock: Clock) -> None:
        self.limit = limit
        self.timeout_s = timeout_s
        self._clock = clock
        self._in_flight = 0
        self._closing = asyncio.Event()

    @property
    def in_flight(self) -> int:
        """Uploads whose bodies are arriving (or being probed) now."""
        return self._in_flight

    def close(self) -> None:
        """Abandon every body still arriving (shutdown) and take no new ones."""
        self._closing.set()

    @contextlib.asynccontextmanager
    async def place(self) -> AsyncIterator[None]:
        """Hold one of the `limit` upload places until the upload is queued or refused."""
        if self._in_flight >= self.limit:
            raise TooManyUploadsError(self.limit, retry_after_s=max(1, round(self.timeout_s / 10)))
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1

    async def receive(self, body: Awaitable[T]) -> T:
        """Await `body` (the body read) within the timeout; abandoned at once on shutdown.

        Raises UploadTimeoutError when the timeout passes first and
        UploadAbandonedError when the gate closes first; the read is cancelled.
        """
        read = asyncio.ensure_future(body)
        timer = asyncio.ensure_future(self._clock.sleep(self.timeout_s))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({read, timer, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (timer, closing, read):
                if not waiter.done():
                    waiter.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await waiter
        if read.done() and not read.cancelled():
            return read.result()
        if closing.done() and not closing.cancelled():
            raise UploadAbandonedError
        raise UploadTimeoutError(self.timeout_s)
