"""The one intake every upload route goes through, and the wait of the synchronous ones.

For every surface: check the queue has room and hold an upload place
(MAX_UPLOADS_IN_FLIGHT) before reading the body, stream the body within
MAX_UPLOAD_MB and UPLOAD_TIMEOUT_S, read the surface's form Struct, let the surface turn it
into a `JobSpec`, hand the upload to the service (probe, queue), and either
return the job (task API) or await it (OpenAI, /asr: a client that goes away
cancels its job). Each surface's `Intake` also declares its upload routes, so
their OpenAPI documentation comes from the same form.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import msgspec
import structlog
from litestar import Request, post
from litestar.openapi.datastructures import ResponseSpec

from app.api.forms import read_fields
from app.api.multipart import content_length, read_multipart
from app.api.security import client_of
from app.api.upload_schema import upload_operation
from app.service import JobSpec, TranscriptionService
from app.service.errors import (
    ClientGoneError,
    InvalidInputError,
    UploadTooLargeError,
    job_failure,
)
from app.transcription.jobs import Job, JobStatus

__all__ = ["AnyRequest", "Intake", "answer_when_done", "await_result", "receive_upload"]

log = structlog.get_logger(__name__)

FormT = TypeVar("FormT", bound=msgspec.Struct)
AnswerT = TypeVar("AnswerT")
# An HTTP request whatever its user, auth and state types: upload routes use none of them.
AnyRequest = Request[Any, Any, Any]


@dataclass(frozen=True, kw_only=True)
class Intake(Generic[FormT]):
    """How one surface receives uploads and declares its upload routes.

    It names the form the surface reads, where the file and the options come from,
    and the error answers its routes document.
    """

    surface: str
    form: type[FormT]
    errors: Mapping[int, ResponseSpec]
    file_field: str = "file"
    file_description: str = "the audio or video file (wav, flac, mp3, ogg, m4a, webm, mp4, ...)"
    # Options also (or, for whisper-asr-webservice, only) in the query string.
    query_options: bool = True
    options_documented_in: Literal["body", "query"] = "body"
    # Media types a 200 may have besides JSON (subtitle and text formats, event streams).
    answers: tuple[str, ...] = ()

    def route(self, path: str, summary: str) -> post:
        """The decorator of an upload route of this surface: POST `path`, answered with 200."""
        in_query = self.options_documented_in == "query"
        description = f"multipart/form-data with the audio in the `{self.file_field}` field"
        if self.query_options and not in_query:
            description += "; every text field may also be given in the query string"
        operation = upload_operation(
            self.form,
            file_field=self.file_field,
            file_description=self.file_description,
            description=description,
            fields_in_query=in_query,
            answers=self.answers,
        )
        return post(
            path,
            summary=summary,
            operation_class=operation,
            status_code=200,
            responses=self.errors,
        )


async def receive_upload(
    request: AnyRequest,
    service: TranscriptionService,
    intake: Intake[FormT],
    to_spec: Callable[[FormT], JobSpec],
) -> tuple[Job, FormT]:
    """Take one upload from `request` into the queue; the job and the form it came with."""
    max_bytes = service.settings.max_upload_mb * 1024 * 1024
    declared = content_length(request)
    if declared is not None and declared > max_bytes:
        raise UploadTooLargeError(max_bytes)
    # Refusals come before the body is read: a full queue (or this client's share of it,
    # or of the upload places) answers at once. A body that stalls, trickles below the
    # minimum rate or never ends (a lying Content-Length) gets 408 and frees its place.
    client = client_of(request.scope)
    async with service.upload_place(expected_bytes=declared or 0, client=client) as reservation:
        pace = service.body_pace()
        form = await service.receive_body(
            read_multipart(request, max_bytes=max_bytes, on_chunk=pace.arrived), pace
        )
        query = request.query_params if intake.query_options else None
        fields = read_fields(intake.form, form, query)
        spec = msgspec.structs.replace(to_spec(fields), client=client)
        upload = form.file(intake.file_field)
        if upload is None:
            raise InvalidInputError(
                f"no file in the upload: send it in the form field `{intake.file_field}`",
                param=intake.file_field,
            )
        job = await service.accept(reservation, upload.data, spec, file_name=upload.filename)
    return job, fields


async def _disconnected(request: AnyRequest) -> None:
    """Return when the ASGI server reports that the client has gone.

    Called only after the whole body has been read, so `receive()` has nothing else
    to deliver: it blocks until the connection closes.
    """
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def await_result(request: AnyRequest, service: TranscriptionService, job: Job) -> Job:
    """Wait until `job` is final and return it finished.

    Raises ClientGoneError when the client disconnects first (the job is cancelled
    and erased), JobFailedError when the job failed (erased as well).
    """
    finished = asyncio.ensure_future(service.wait_until_final(job))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({finished, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in (finished, gone):
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await waiter
    if not job.is_final:
        await cancel_abandoned(service, job)
        raise ClientGoneError
    if job.status is not JobStatus.FINISHED:
        await service.forget(job)
        if service.is_draining:  # stopped or never run because the server shuts down
            raise service.shutting_down_error(job.error)
        raise job_failure(job.error)
    return job


async def answer_when_done(
    request: AnyRequest,
    service: TranscriptionService,
    job: Job,
    render: Callable[[Job], AnswerT],
) -> AnswerT:
    """Wait for `job`, render the answer from it, and erase it: nobody can fetch it later."""
    finished = await await_result(request, service, job)
    try:
        return render(finished)
    finally:
        await service.forget(finished)


async def cancel_abandoned(service: TranscriptionService, job: Job) -> None:
    """Cancel and erase a job whose client went away before its answer."""
    reason = str(ClientGoneError())
    await service.cancel(job, reason)
    await service.forget(job)
    log.info("job_cancelled_client_gone", task_id=job.id, surface=job.surface)
