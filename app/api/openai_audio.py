"""OpenAI-compatible speech-to-text: /v1/audio/transcriptions, /v1/audio/translations, /v1/models.

Requests go through the same service (queue, models, privacy rules) as the task API;
the route waits for its job, and a client that goes away cancels it. Errors use
OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, on every path.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
import structlog
from litestar import Controller, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import PathParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ExceptionHandlersMap

from app.api.compat_schemas import (
    OpenAIError,
    OpenAIErrorBody,
    OpenAIModel,
    OpenAIModelList,
    OpenAITranscription,
    OpenAIUsage,
    TextDeltaEvent,
    TextDoneEvent,
)
from app.api.dependencies import Owner, Service
from app.api.form_options import (
    SHAPE_FIELDS,
    InvalidInputError,
    parse_bool,
    parse_language,
    parse_model,
    parse_subtitle_shape,
)
from app.api.job_wait import CLIENT_GONE, ClientGoneError, wait_for_job
from app.api.multipart import (
    MultipartForm,
    file_schema,
    multipart_operation,
    read_multipart,
    text_schema,
)
from app.api.schemas import error_responses
from app.api.speaker_options import check_references, parse_speaker_options, with_speakers
from app.service import ShuttingDownError, TranscriptionService
from app.transcription import formats
from app.transcription.audio import AudioDecodeError, AudioTooLongError
from app.transcription.catalogue import UnknownModelError
from app.transcription.languages import UnknownLanguageError
from app.transcription.models import NoModelAllowedError
from app.transcription.queue import Job, JobStatus, QueueFullError
from app.transcription.types import TaskType, TranscribeOptions, Transcript

__all__ = ["OPENAI_DEFAULT_MODEL", "OPENAI_FORMATS", "OpenAIController"]

log = structlog.get_logger(__name__)

OPENAI_DEFAULT_MODEL = "whisper-1"
# OpenAI's speaker-label model: here the server's Whisper model plus the speaker stage.
OPENAI_DIARIZE_MODEL = "gpt-4o-transcribe-diarize"
OPENAI_FORMATS = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")
GRANULARITIES = ("segment", "word")
# Whisper's own fallback ladder: temperature 0 means "start greedy, raise it on failure".
AUTOMATIC_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
SSE_KEEPALIVE_S = 15.0
_STARTED = int(time.time())

_UPLOAD_OPERATION = multipart_operation(
    {
        "file": file_schema("the audio or video file (flac, mp3, mp4, m4a, ogg, wav, webm, ...)"),
        "model": text_schema(
            f"{OPENAI_DEFAULT_MODEL} (the server's choice) or a model name from GET /v1/models"
        ),
        "language": text_schema("ISO-639-1 code of the spoken language; omit to detect it"),
        "prompt": text_schema("text to guide the style or continue a previous segment"),
        "response_format": text_schema("output format", enum=list(OPENAI_FORMATS)),
        "temperature": text_schema("0 to 1; 0 raises the temperature automatically on failure"),
        "timestamp_granularities[]": text_schema(
            "segment and/or word (word needs response_format=verbose_json)",
            enum=list(GRANULARITIES),
        ),
        "stream": text_schema(
            "true: server-sent transcript.text.delta events (diarized_json: then one "
            "transcript.text.segment per segment), then .done"
        ),
        "known_speaker_names[]": text_schema("diarized_json: names of up to 4 known speakers"),
        "known_speaker_references[]": text_schema(
            "diarized_json: a short clip of each known speaker, as a data URL "
            "(data:audio/wav;base64,...)"
        ),
        "chunking_strategy": text_schema("accepted for compatibility; the server cuts by VAD"),
        **{name: text_schema(f"srt/vtt cue shaping: {name}") for name in SHAPE_FIELDS},
    },
    required=["file"],
    description="multipart/form-data, as OpenAI's SDKs send it",
)

ModelIdPath = Annotated[str, PathParameter(description="a model id from GET /v1/models")]


class OpenAIRequest(msgspec.Struct, kw_only=True, frozen=True):
    """One parsed and checked transcription or translation request."""

    options: TranscribeOptions
    response_format: str
    granularities: tuple[str, ...]
    stream: bool
    shape_values: dict[str, str | None]


# ---------------------------------------------------------------- errors


def _error_type(status_code: int) -> str:
    if status_code == HTTP_429_TOO_MANY_REQUESTS:
        return "rate_limit_error"
    if status_code >= HTTP_500_INTERNAL_SERVER_ERROR:
        return "server_error"
    return "invalid_request_error"


def openai_error_response(
    status_code: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[OpenAIErrorBody]:
    """An error in OpenAI's shape."""
    error = OpenAIError(message=message, type=_error_type(status_code), param=param, code=code)
    return Response(OpenAIErrorBody(error=error), status_code=status_code, headers=headers)


_HTTP_CODES = {
    401: "invalid_api_key",
    403: "forbidden",
    404: "not_found",
    413: "file_too_large",
    429: "queue_full",
}


def _handle_error(_: Request[Any, Any, Any], exc: Exception) -> Response[OpenAIErrorBody]:
    """Every failure of this surface, in OpenAI's shape."""
    if isinstance(exc, InvalidInputError):
        return openai_error_response(
            HTTP_400_BAD_REQUEST, exc.message, param=exc.param, code=exc.code
        )
    if isinstance(exc, AudioTooLongError):
        return openai_error_response(
            HTTP_413_REQUEST_ENTITY_TOO_LARGE, str(exc), param="file", code=exc.code
        )
    if isinstance(exc, AudioDecodeError):
        return openai_error_response(HTTP_400_BAD_REQUEST, str(exc), param="file", code=exc.code)

    if isinstance(exc, UnknownLanguageError):
        return openai_error_response(
            HTTP_400_BAD_REQUEST, str(exc), param="language", code="unsupported_language"
        )
    if isinstance(exc, NoModelAllowedError):
        return openai_error_response(
            HTTP_400_BAD_REQUEST, str(exc), param="model", code="model_not_allowed"
        )
    if isinstance(exc, HTTPException):
        return openai_error_response(
            exc.status_code,
            exc.detail,
            code=_HTTP_CODES.get(exc.status_code),
            headers=exc.headers,
        )
    # Litestar's exception logging records server errors (request_failed) already.
    return openai_error_response(HTTP_500_INTERNAL_SERVER_ERROR, "internal server error")


# Listed one by one: Litestar picks the most specific class across all layers, so the
# app's own handlers for these would otherwise answer in the task API's shape.
OPENAI_EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    exc_type: _handle_error
    for exc_type in (
        InvalidInputError,
        AudioDecodeError,
        UnknownLanguageError,
        UnknownModelError,
        NoModelAllowedError,
        QueueFullError,
        HTTPException,
        Exception,
    )
}


# ---------------------------------------------------------------- request parsing


def _temperature(raw: str | None) -> float | tuple[float, ...]:
    if raw is None or not raw.strip():
        return AUTOMATIC_TEMPERATURES
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise InvalidInputError(
            f"temperature must be a number from 0 to 1, not {raw!r}", param="temperature"
        )
    return AUTOMATIC_TEMPERATURES if value == 0.0 else (value,)


def _granularities(form: MultipartForm, response_format: str) -> tuple[str, ...]:
    values = form.values("timestamp_granularities[]") + form.values("timestamp_granularities")
    for value in values:
        if value not in GRANULARITIES:
            raise InvalidInputError(
                f"timestamp_granularities may hold segment and word, not {value!r}",
                param="timestamp_granularities",
            )
    if values and response_format != "verbose_json":
        raise InvalidInputError(
            "timestamp_granularities needs response_format=verbose_json",
            param="timestamp_granularities",
        )
    return tuple(dict.fromkeys(values))


def parse_openai_request(
    form: MultipartForm, service: TranscriptionService, task: TaskType
) -> OpenAIRequest:
    """Check every field of an OpenAI request; raise InvalidInputError naming the bad one."""
    response_format = (form.value("response_format") or "json").strip()
    if response_format not in OPENAI_FORMATS:
        raise InvalidInputError(
            f"response_format must be one of {', '.join(OPENAI_FORMATS)}, not {response_format!r}",
            param="response_format",
        )
    granularities = _granularities(form, response_format)
    diarized = response_format == "diarized_json"
    if diarized and task == "translate":
        raise InvalidInputError("diarized_json is for transcriptions only", param="response_format")
    options = TranscribeOptions(
        task=task,
        language=parse_language(form.value("language")),
        initial_prompt=form.value("prompt") or None,
        word_timestamps="word" in granularities,
        temperature=_temperature(form.value("temperature")),
        model=parse_model(
            form.value("model"),
            service.models,
            default_aliases=(OPENAI_DEFAULT_MODEL, OPENAI_DIARIZE_MODEL),
        ),
    )
    speakers = parse_speaker_options(
        lambda _: None,
        names=form.values("known_speaker_names[]") + form.values("known_speaker_names"),
        references=form.values("known_speaker_references[]")
        + form.values("known_speaker_references"),
        forced=diarized,
        keep_words="word" in granularities,
    )
    shape_values = {name: form.value(name) for name in SHAPE_FIELDS}
    parse_subtitle_shape(dict(shape_values))  # refuse bad values before the job is queued
    return OpenAIRequest(
        options=with_speakers(options, speakers),
        response_format=response_format,
        granularities=granularities,
        stream=parse_bool(form.value("stream"), "stream"),
        shape_values=shape_values,
    )


# ---------------------------------------------------------------- responses


def _usage(transcript: Transcript) -> OpenAIUsage:
    return OpenAIUsage(seconds=math.ceil(max(0.0, transcript.duration)))


def render_openai(job: Job, request: OpenAIRequest) -> Response[Any]:
    """The finished job in the asked response_format, with OpenAI's content types."""
    transcript = job.transcript
    assert transcript is not None
    fmt = request.response_format
    if fmt == "json":
        return Response(OpenAITranscription(text=transcript.text, usage=_usage(transcript)))
    if fmt == "text":
        return Response(transcript.text + "\n", media_type=formats.MEDIA_TYPES["txt"])
    if fmt == "verbose_json":
        body = formats.to_verbose_json(
            transcript,
            task=job.task_type,
            segments=not request.granularities or "segment" in request.granularities,
            words="word" in request.granularities,
        )
        return Response(body, media_type=formats.MEDIA_TYPES["verbose_json"])
    if fmt == "diarized_json":
        body = formats.to_diarized_json(transcript)
        return Response(body, media_type=formats.MEDIA_TYPES["diarized_json"])
    shape = parse_subtitle_shape(dict(request.shape_values))
    return Response(
        formats.render(transcript, fmt, shape=shape), media_type=formats.MEDIA_TYPES[fmt]
    )


def _job_failure(job: Job) -> Response[OpenAIErrorBody]:
    return openai_error_response(
        HTTP_500_INTERNAL_SERVER_ERROR, job.error or "transcription failed", code="job_failed"
    )


def _sse(payload: msgspec.Struct | dict[str, Any]) -> ServerSentEventMessage:
    return ServerSentEventMessage(data=msgspec.json.encode(payload).decode())


async def stream_transcript(
    service: TranscriptionService, job: Job, *, diarized: bool = False
) -> AsyncIterator[ServerSentEventMessage]:
    """`transcript.text.delta` for each segment as it is decoded, then `transcript.text.done`.

    The deltas join (and strip) to exactly the final text. With `diarized`, one
    `transcript.text.segment` per labelled segment comes before `.done`: speakers are
    known only once the whole audio has been heard. A failed job ends the stream
    with an OpenAI error object; a client that leaves cancels the job.
    """
    sent = 0
    try:
        while True:
            changed = job.change_token()
            segments = job.transcript.segments if job.transcript else job.partial_segments
            while sent < len(segments):
                text = segments[sent].text
                yield _sse(TextDeltaEvent(delta=text.lstrip() if sent == 0 else text))
                sent += 1
            if job.is_final:
                break
            await job.wait_for_change(changed, max_wait_s=SSE_KEEPALIVE_S)
            if not changed.is_set():
                yield ServerSentEventMessage(comment="keepalive", data=None)
        if job.status is JobStatus.FINISHED and job.transcript is not None:
            transcript = job.transcript
            if diarized:
                for index, segment in enumerate(transcript.segments):
                    yield _sse(formats.diarized_segment(index, segment))
            yield _sse(TextDoneEvent(text=transcript.text, usage=_usage(transcript)))
        else:
            error = OpenAIError(
                message=job.error or "transcription failed", type="server_error", code="job_failed"
            )
            yield _sse(OpenAIErrorBody(error=error))
    finally:
        if not job.is_final:
            service.cancel(job, CLIENT_GONE)
            log.info("job_cancelled_client_gone", task_id=job.id, surface=job.surface)
        service.forget(job)


# ---------------------------------------------------------------- controller


class OpenAIController(Controller):
    """The routes OpenAI's SDKs and the tools built on them call."""

    path = "/v1"
    tags = ["openai"]
    exception_handlers = OPENAI_EXCEPTION_HANDLERS

    async def _run(
        self, request: Request[Any, Any, Any], service: Service, owner: str | None, task: TaskType
    ) -> Response[Any] | ServerSentEvent:
        try:
            # The queue place is held before the body is read, as on the task API.
            with service.reserve_slot() as slot:
                max_bytes = service.settings.max_upload_mb * 1024 * 1024
                form = await read_multipart(request, max_bytes=max_bytes)
                upload = form.files.get("file")
                if upload is None:
                    raise InvalidInputError(
                        "send the audio in the multipart field `file`", param="file"
                    )
                parsed = parse_openai_request(form, service, task)
                if parsed.options.speakers is not None:
                    await asyncio.to_thread(check_references, parsed.options.speakers)
                job = await service.submit(
                    upload.data,
                    task_type=task,
                    options=parsed.options,
                    file_name=upload.filename,
                    surface="openai",
                    owner=owner,
                    slot=slot,
                )
        except (QueueFullError, ShuttingDownError) as refused:
            message, retry_after = service.refusal(refused)
            draining = isinstance(refused, ShuttingDownError)
            return openai_error_response(
                HTTP_503_SERVICE_UNAVAILABLE if draining else HTTP_429_TOO_MANY_REQUESTS,
                message,
                code="shutting_down" if draining else "queue_full",
                headers={"Retry-After": str(retry_after)},
            )
        if parsed.stream:
            diarized = parsed.response_format == "diarized_json"
            return ServerSentEvent(stream_transcript(service, job, diarized=diarized))
        try:
            await wait_for_job(request, service, job)
        except ClientGoneError:
            return openai_error_response(499, CLIENT_GONE, code="client_closed_request")
        try:
            if job.status is not JobStatus.FINISHED or job.transcript is None:
                return _job_failure(job)
            return render_openai(job, parsed)
        finally:
            service.forget(job)

    @post(
        "/audio/transcriptions",
        responses=error_responses(400, 413, 500, 503, shape=OpenAIErrorBody),
        summary="Transcribe audio (OpenAI-compatible)",
        operation_class=_UPLOAD_OPERATION,
        status_code=200,
    )
    async def transcriptions(
        self, request: Request[Any, Any, Any], service: Service, owner: Owner
    ) -> Response[Any] | ServerSentEvent:
        """Transcribe an upload in its own language, as OpenAI's audio API does."""
        return await self._run(request, service, owner, "transcribe")

    @post(
        "/audio/translations",
        responses=error_responses(400, 413, 500, 503, shape=OpenAIErrorBody),
        summary="Translate audio into English text (OpenAI-compatible)",
        operation_class=_UPLOAD_OPERATION,
        status_code=200,
    )
    async def translations(
        self, request: Request[Any, Any, Any], service: Service, owner: Owner
    ) -> Response[Any] | ServerSentEvent:
        """Translate an upload into English text, as OpenAI's audio API does."""
        return await self._run(request, service, owner, "translate")

    @get(
        "/models",
        summary="Models this server can load",
        responses=error_responses(shape=OpenAIErrorBody),
    )
    async def models(self, service: Service) -> OpenAIModelList:
        """whisper-1 (the server's choice) and every model within MAX_MODEL found offline."""
        return OpenAIModelList(data=[_model(name) for name in _model_ids(service)])

    @get(
        "/models/{model_id:str}",
        summary="One model this server can load",
        responses=error_responses(404, shape=OpenAIErrorBody),
    )
    async def model(self, service: Service, model_id: ModelIdPath) -> Response[Any]:
        """The model, or a 404 in OpenAI's shape when this server cannot load it."""
        if model_id not in _model_ids(service):
            return openai_error_response(
                HTTP_404_NOT_FOUND,
                f"the model {model_id!r} does not exist on this server",
                param="model",
                code="model_not_found",
            )
        return Response(_model(model_id))


def _model_ids(service: TranscriptionService) -> list[str]:
    return [OPENAI_DEFAULT_MODEL, OPENAI_DIARIZE_MODEL, *service.models.allowed_models()]


def _model(name: str) -> OpenAIModel:
    return OpenAIModel(id=name, created=_STARTED)
