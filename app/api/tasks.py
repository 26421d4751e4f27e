"""The task API (/api/v1): the seed's routes with their field names, plus the new task routes."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator
from pathlib import PurePath
from typing import Annotated, Any
from urllib.parse import quote

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.params import PathParameter, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.status_codes import HTTP_409_CONFLICT

from app.api.dependencies import Owner, Service
from app.api.form_options import (
    SHAPE_FIELDS,
    InvalidInputError,
    parse_bool,
    parse_model,
    parse_subtitle_shape,
)
from app.api.multipart import (
    FilePart,
    MultipartForm,
    file_schema,
    multipart_operation,
    read_multipart,
    text_schema,
)
from app.api.schemas import (
    DecoderStatus,
    PrivacyInfo,
    ProgressEvent,
    TaskDeleted,
    TaskResponse,
    error_responses,
    task_response,
)
from app.api.speaker_options import SPEAKER_FIELDS, parse_speaker_options, with_speakers
from app.transcription import formats
from app.transcription.languages import normalise_language
from app.transcription.queue import Job, JobStatus
from app.transcription.types import SubtitleShape, TaskType, TranscribeOptions

__all__ = ["TaskController", "content_disposition"]

SSE_KEEPALIVE_S = 15.0

_UPLOAD_OPERATION = multipart_operation(
    {
        "file": file_schema("the audio or video file (wav, flac, mp3, ogg, m4a, webm, mp4, ...)"),
        "language": text_schema("language code such as en or de; omit to detect it"),
        "model": text_schema("a model name within MAX_MODEL; omit for the server's choice"),
        "initial_prompt": text_schema("text to guide the style or spelling"),
        "word_timestamps": text_schema("true: time every word (verbose_json, finer cues)"),
        "vad_filter": text_schema("true: skip the parts without speech"),
        "max_line_width": text_schema("subtitles: characters per line"),
        "max_line_count": text_schema("subtitles: lines per cue"),
        "max_words_per_cue": text_schema("subtitles: words per cue"),
        "diarize": text_schema("true: label who speaks (speaker on segments, A, B, ...)"),
        "num_speakers": text_schema("diarize: the number of speakers, when known"),
        "min_speakers": text_schema("diarize: at least this many speakers"),
        "max_speakers": text_schema("diarize: at most this many speakers"),
    },
    required=["file"],
    description="multipart/form-data with the audio in the `file` field; every text field "
    "may also be given in the query string",
)
UPLOAD_OPTION_FIELDS = (
    "model",
    "initial_prompt",
    "word_timestamps",
    "vad_filter",
    *SHAPE_FIELDS,
    *SPEAKER_FIELDS,
)

LanguageQuery = Annotated[
    str | None,
    QueryParameter(name="language", description="language code (en, de, ...); omit to detect it"),
]
TaskIdQuery = Annotated[str, QueryParameter(name="task_id", description="the id of a task")]
TaskIdPath = Annotated[str, PathParameter(description="the id of a task")]


def content_disposition(file_name: str | None, extension: str) -> str:
    """An attachment header safe for any file name (ASCII fallback plus RFC 5987 form)."""
    stem = PurePath((file_name or "").replace("\\", "/")).stem or "transcript"
    stem = "".join(ch for ch in stem if unicodedata.category(ch)[0] != "C")[:120] or "transcript"
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    ascii_stem = re.sub(r"[^A-Za-z0-9._ -]+", "_", ascii_stem).strip(" ._") or "transcript"
    full = f"{stem}.{extension}"
    return (
        f'attachment; filename="{ascii_stem}.{extension}"; '
        f"filename*=UTF-8''{quote(full, safe='')}"
    )


def _uploaded_file(form: MultipartForm) -> FilePart:
    part = form.files.get("file") or next(iter(form.files.values()), None)
    if part is None:
        raise ClientException(detail="no file in the upload: send it in the form field `file`")
    return part


def _language(query_value: str | None, form: MultipartForm) -> str | None:
    raw = query_value if query_value is not None else form.value("language")
    try:
        return normalise_language(raw)
    except ValueError as exc:
        raise ClientException(detail=str(exc)) from None


def _upload_options(
    request: Request[Any, Any, Any],
    form: MultipartForm,
    service: Service,
    task_type: TaskType,
    language: str | None,
) -> tuple[TranscribeOptions, SubtitleShape]:
    """Options from the form, or else the query string; subtitle shaping asks for word timing."""

    def raw(name: str) -> str | None:
        value = form.value(name)
        return value if value is not None else request.query_params.get(name)

    try:
        shape = parse_subtitle_shape({name: raw(name) for name in SHAPE_FIELDS})
        word_timestamps = parse_bool(raw("word_timestamps"), "word_timestamps")
        options = TranscribeOptions(
            task=task_type,
            language=_language(language, form),
            initial_prompt=raw("initial_prompt") or None,
            word_timestamps=word_timestamps or not shape.is_plain,
            vad_filter=parse_bool(raw("vad_filter"), "vad_filter"),
            model=parse_model(raw("model"), service.models),
        )
        speakers = parse_speaker_options(raw, keep_words=word_timestamps)
        options = with_speakers(options, speakers)
    except InvalidInputError as exc:
        raise ClientException(detail=exc.message) from None
    return options, shape


def _finished_job(service: Service, task_id: TaskIdPath, owner: str | None) -> Job:
    job = _known_job(service, task_id, owner)
    if job.status is JobStatus.FAILED:
        raise HTTPException(
            status_code=HTTP_409_CONFLICT, detail=f"the task failed: {job.error or 'unknown'}"
        )
    if job.status is not JobStatus.FINISHED or job.transcript is None:
        raise HTTPException(
            status_code=HTTP_409_CONFLICT,
            detail=f"the task is {job.status}; the result is ready once it is finished",
        )
    return job


def _known_job(service: Service, task_id: TaskIdPath, owner: str | None) -> Job:
    job = service.get(task_id, owner=owner)
    if job is None:
        raise NotFoundException(detail="no such task (unknown id, or its result has expired)")
    return job


def _render(job: Job, fmt: str, shape: SubtitleShape | None = None) -> Response[bytes]:
    assert job.transcript is not None
    return Response(
        content=formats.render(
            job.transcript, fmt, shape=shape or job.subtitle_shape, task=job.task_type
        ),
        media_type=formats.MEDIA_TYPES[fmt],
        headers={
            "Content-Disposition": content_disposition(job.file_name, formats.EXTENSIONS[fmt])
        },
    )


ShapeQuery = Annotated[
    int | None,
    QueryParameter(ge=1, le=10_000, description="subtitles: overrides the upload's setting"),
]


class TaskController(Controller):
    """Upload, poll, stream progress, fetch and delete transcription tasks."""

    path = "/api/v1"
    tags = ["tasks"]

    async def _submit(
        self,
        request: Request[Any, Any, Any],
        service: Service,
        owner: str | None,
        task_type: TaskType,
        language: str | None,
    ) -> TaskResponse:
        # The queue place is held before the body is read: a full queue answers 429
        # without reading (or decoding) an upload it could not take.
        with service.reserve_slot() as slot:
            max_bytes = service.settings.max_upload_mb * 1024 * 1024
            form = await read_multipart(request, max_bytes=max_bytes)
            upload = _uploaded_file(form)
            options, shape = _upload_options(request, form, service, task_type, language)
            job = await service.submit(
                upload.data,
                task_type=task_type,
                options=options,
                file_name=upload.filename,
                subtitle_shape=shape,
                owner=owner,
                slot=slot,
            )
        return task_response(job, service.position(job))

    @post(
        "/transcribe",
        summary="Upload audio to transcribe",
        operation_class=_UPLOAD_OPERATION,
        status_code=200,
        responses=error_responses(400, 413),
    )
    async def transcribe(
        self,
        request: Request[Any, Any, Any],
        service: Service,
        owner: Owner,
        language: LanguageQuery,
    ) -> TaskResponse:
        """Queue a transcription; answers at once with the task (poll it or stream its events)."""
        return await self._submit(request, service, owner, "transcribe", language)

    @post(
        "/translate",
        summary="Upload audio to translate into English",
        operation_class=_UPLOAD_OPERATION,
        status_code=200,
        responses=error_responses(400, 413),
    )
    async def translate(
        self,
        request: Request[Any, Any, Any],
        service: Service,
        owner: Owner,
        language: LanguageQuery,
    ) -> TaskResponse:
        """Queue a translation into English."""
        return await self._submit(request, service, owner, "translate", language)

    @get("/status", summary="A task's state (seed route)", responses=error_responses(400, 404))
    async def status(self, service: Service, owner: Owner, task_id: TaskIdQuery) -> TaskResponse:
        """The task with its live queue position; 404 when unknown or expired."""
        job = _known_job(service, task_id, owner)
        return task_response(job, service.position(job))

    @get(
        "/srt",
        summary="A finished task's subtitles (seed route)",
        media_type="application/x-subrip",
        responses=error_responses(400, 404, 409),
    )
    async def srt(self, service: Service, owner: Owner, task_id: TaskIdQuery) -> Response[bytes]:
        """SubRip subtitles of a finished task; 409 while it is not finished."""
        return _render(_finished_job(service, task_id, owner), "srt")

    @get("/decoder_status", summary="Model and queue state", responses=error_responses())
    async def decoder_status(self, service: Service) -> DecoderStatus:
        """Which model is loaded (or loading), where it runs, and how full the queue is."""
        state = service.status()
        return DecoderStatus(
            is_model_loaded=bool(state.loaded_models),
            loaded_models=state.loaded_models,
            loading_model=state.loading_model,
            last_loaded_model_size=state.last_loaded_model,
            target_model_size=state.target_model,
            max_model_to_use=state.max_model,
            device=state.device,
            compute_type=state.compute_type,
            worker_running=state.worker_running,
            tasks_in_queue=state.waiting_jobs,
            tasks_running=state.running_jobs,
            max_task_queue_size=state.max_queue_size,
        )

    @get("/tasks/{task_id:str}", summary="A task's state", responses=error_responses(404))
    async def get_task(self, service: Service, owner: Owner, task_id: TaskIdPath) -> TaskResponse:
        """The task with its live queue position; 404 when unknown or expired."""
        job = _known_job(service, task_id, owner)
        return task_response(job, service.position(job))

    @delete(
        "/tasks/{task_id:str}",
        summary="Cancel a task and erase its result",
        status_code=200,
        responses=error_responses(404),
    )
    async def delete_task(self, service: Service, owner: Owner, task_id: TaskIdPath) -> TaskDeleted:
        """Cancels a queued or running task and forgets it at once."""
        if not service.delete(task_id, owner=owner):
            raise NotFoundException(detail="no such task (unknown id, or its result has expired)")
        return TaskDeleted(task_id=task_id)

    @get(
        "/tasks/{task_id:str}/result",
        summary="A finished task's result in any format",
        responses=error_responses(400, 404, 409),
    )
    async def result(
        self,
        service: Service,
        owner: Owner,
        task_id: TaskIdPath,
        fmt: Annotated[
            str,
            QueryParameter(
                name="format", description="one of txt, srt, vtt, tsv, json, verbose_json"
            ),
        ] = "json",
        max_line_width: ShapeQuery = None,
        max_line_count: ShapeQuery = None,
        max_words_per_cue: ShapeQuery = None,
    ) -> Response[bytes]:
        """The transcript in any format; srt/vtt cues shaped as asked; 409 while not finished."""
        if fmt not in formats.FORMATS:
            raise ClientException(
                detail=f"unknown format {fmt!r}; use one of {', '.join(formats.FORMATS)}"
            )
        job = _finished_job(service, task_id, owner)
        asked = (max_line_width, max_line_count, max_words_per_cue)
        shape = None
        if any(value is not None for value in asked):
            shape = msgspec.structs.replace(
                job.subtitle_shape,
                **{
                    name: value
                    for name, value in zip(SHAPE_FIELDS, asked, strict=True)
                    if value is not None
                },
            )
        return _render(job, fmt, shape)

    @get(
        "/tasks/{task_id:str}/events",
        summary="Server-sent progress events",
        responses=error_responses(404),
    )
    async def events(self, service: Service, owner: Owner, task_id: TaskIdPath) -> ServerSentEvent:
        """Streams status changes, queue position and fraction of audio done, then the end."""
        job = _known_job(service, task_id, owner)
        return ServerSentEvent(_progress_stream(service, job))

    @get("/privacy", summary="Privacy-relevant settings", responses=error_responses())
    async def privacy(self, service: Service) -> PrivacyInfo:
        """How long results live and whether logs are kept private; audio is never stored."""
        settings = service.settings
        return PrivacyInfo(
            log_privacy_mode=settings.log_privacy_mode,
            delete_results_after_m=settings.delete_results_after_m,
            refresh_expiration_time_on_usage=settings.refresh_expiration_time_on_usage,
            tasks_bound_to_api_key=bool(settings.api_keys),
        )


async def _progress_stream(service: Service, job: Job) -> AsyncIterator[ServerSentEventMessage]:
    last: ProgressEvent | None = None
    changed = True
    while True:
        token = job.change_token()  # taken first, so no change between snapshot and wait is lost
        event = ProgressEvent(
            task_id=job.id,
            status=str(job.status),
            position_in_queue=service.position(job),
            progress=round(job.progress, 4),
            error=job.error if job.is_final else None,
        )
        if event != last:
            yield ServerSentEventMessage(
                event=event.status, data=msgspec.json.encode(event).decode()
            )
            last = event
        elif not changed:
            # Nothing happened for a while: a comment keeps proxies from closing the stream.
            yield ServerSentEventMessage(comment="keepalive", data=None)
        if job.is_final:
            return
        changed = await job.wait_for_change(token, max_wait_s=SSE_KEEPALIVE_S)
