"""Synchronous routes (OpenAI, /asr) await their job; a client that goes away cancels it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from litestar import Request

from app.service import TranscriptionService
from app.transcription.queue import Job

__all__ = ["CLIENT_GONE", "ClientGoneError", "wait_for_job"]

log = structlog.get_logger(__name__)

CLIENT_GONE = "the client disconnected before the result was ready"


class ClientGoneError(Exception):
    """The client closed the connection while its job waited or ran; the job is cancelled."""


async def _disconnected(request: Request[Any, Any, Any]) -> None:
    """Return when the ASGI server reports that the client has gone.

    Called only after the whole body has been read, so `receive()` has nothing else
    to deliver: it blocks until the connection closes.
    """
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def wait_for_job(
    request: Request[Any, Any, Any], service: TranscriptionService, job: Job
) -> None:
    """Wait until `job` is final; if the client disconnects first, cancel the job and raise."""
    finished = asyncio.ensure_future(job.wait_until_final())
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({finished, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in (finished, gone):
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await waiter
    if not job.is_final:
        service.cancel(job, CLIENT_GONE)
        service.forget(job)
        log.info("job_cancelled_client_gone", task_id=job.id, surface=job.surface)
        raise ClientGoneError
