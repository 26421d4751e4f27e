"""whisper-asr-webservice-compatible routes: POST /asr and POST /detect-language.

Bazarr, subgen and other subtitle tools call these with the upload in the multipart
field `audio_file` and the options in the query string; with `encode=false` the
upload is raw 16 kHz mono s16le PCM. Answers carry the webservice's headers and,
on errors, its (FastAPI's) shape `{"detail": "..."}`. Jobs go through the same
queue and models as every other surface.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, post
from litestar.exceptions import HTTPException
from litestar.params import QueryParameter
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ExceptionHandlersMap

from app.api.compat_schemas import AsrError, DetectedLanguage, LanguageDetectionResponse
from app.api.dependencies import Service
from app.api.form_options import (
    InvalidInputError,
    parse_bool,
    parse_language,
    parse_model,
    parse_subtitle_shape,
)
from app.api.job_wait import CLIENT_GONE, ClientGoneError, wait_for_job
from app.api.multipart import FilePart, file_schema, multipart_operation, read_multipart
from app.api.schemas import error_responses
from app.api.speaker_options import parse_speaker_options, with_speakers
from app.api.tasks import content_disposition
from app.service import ShuttingDownError, TranscriptionService
from app.transcription import formats
from app.transcription.audio import AudioDecodeError, AudioTooLongError
from app.transcription.catalogue import UnknownModelError
from app.transcription.languages import UnknownLanguageError, language_name
from app.transcription.models import NoModelAllowedError
from app.transcription.queue import Job, JobStatus, QueueFullError
from app.transcription.types import SubtitleShape, TaskType, TranscribeOptions

__all__ = ["ASR_ENGINE", "ASR_OUTPUTS", "AsrController"]


ASR_ENGINE = "faster_whisper"
ASR_OUTPUTS = ("txt", "vtt", "srt", "tsv", "json")
ASR_TASKS = ("transcribe", "translate")

_UPLOAD_OPERATION = multipart_operation(
    {"audio_file": file_schema("the audio (or raw 16 kHz s16le PCM with encode=false)")},
    required=["audio_file"],
    description="multipart/form-data with the audio in the `audio_file` field",
)


def _query(description: str) -> Any:
    return QueryParameter(description=description)


# ---------------------------------------------------------------- errors


def asr_error_response(
    status_code: int, detail: str, headers: dict[str, str] | None = None
) -> Response[AsrError]:
    """An error in whisper-asr-webservice's shape."""
    return Response(AsrError(detail=detail), status_code=status_code, headers=headers)


def _handle_error(_: Request[Any, Any, Any], exc: Exception) -> Response[AsrError]:
    if isinstance(exc, AudioTooLongError):
        return asr_error_response(HTTP_413_REQUEST_ENTITY_TOO_LARGE, str(exc))
    if isinstance(exc, InvalidInputError | AudioDecodeError | UnknownLanguageError):
        return asr_error_response(HTTP_400_BAD_REQUEST, str(exc))
    if isinstance(exc, NoModelAllowedError):
        return asr_error_response(HTTP_400_BAD_REQUEST, str(exc))
    if isinstance(exc, HTTPException):
        return asr_error_response(exc.status_code, exc.detail, headers=exc.headers)
    # Litestar's exception logging records server errors (request_failed) already.
    return asr_error_response(HTTP_500_INTERNAL_SERVER_ERROR, "internal server error")


# Listed one by one so that these beat the app's own handlers (see OpenAIController).
ASR_EXCEPTION_HANDLERS: ExceptionHandlersMap = {
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


# ---------------------------------------------------------------- helpers


def _audio_file(files: dict[str, FilePart]) -> FilePart:
    part = files.get("audio_file") or next(iter(files.values()), None)
    if part is None:
        raise InvalidInputError("no file in the upload: send it in the form field `audio_file`")
    return part


def _choice(value: str | None, allowed: tuple[str, ...], name: str, default: str) -> str:
    chosen = (value or default).strip().lower()
    if chosen not in allowed:
        raise InvalidInputError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return chosen


async def _run_job(
    request: Request[Any, Any, Any],
    service: TranscriptionService,
    *,
    task_type: TaskType,
    options: TranscribeOptions,
    encode: bool,
) -> tuple[Job, FilePart] | Response[AsrError]:
    """Read the upload, queue it and wait; an error response where that fails."""
    try:
        # The queue place is held before the body is read, as on the task API.
        with service.reserve_slot() as slot:
            max_bytes = service.settings.max_upload_mb * 1024 * 1024
            form = await read_multipart(request, max_bytes=max_bytes)
            upload = _audio_file(form.files)
            job = await service.submit(
                upload.data,
                task_type=task_type,
                options=options,
                file_name=upload.filename,
                surface="asr",
                raw_pcm=not encode,
                slot=slot,
            )
    except (QueueFullError, ShuttingDownError) as refused:
        message, retry_after = service.refusal(refused)
        status = (
            HTTP_503_SERVICE_UNAVAILABLE
            if isinstance(refused, ShuttingDownError)
            else HTTP_429_TOO_MANY_REQUESTS
        )
        return asr_error_response(status, message, headers={"Retry-After": str(retry_after)})
    try:
        await wait_for_job(request, service, job)
    except ClientGoneError:
        return asr_error_response(499, CLIENT_GONE)
    if job.status is not JobStatus.FINISHED:
        service.forget(job)
        return asr_error_response(HTTP_500_INTERNAL_SERVER_ERROR, job.error or "the job failed")
    return job, upload


# ---------------------------------------------------------------- controller


class AsrController(Controller):
    """The routes of whisper-asr-webservice, for Bazarr, subgen and similar tools."""

    tags = ["whisper-asr-webservice"]
    exception_handlers = ASR_EXCEPTION_HANDLERS

    @post(
        "/asr",
        responses=error_responses(400, 413, 500, 503, shape=AsrError),
        summary="Transcribe or translate (whisper-asr-webservice-compatible)",
        operation_class=_UPLOAD_OPERATION,
        status_code=200,
    )
    async def asr(
        self,
        request: Request[Any, Any, Any],
        service: Service,
        output: Annotated[str | None, _query("txt, vtt, srt, tsv or json")] = "txt",
        task: Annotated[str | None, _query("transcribe or translate")] = "transcribe",
        language: Annotated[str | None, _query("language code; omit to detect it")] = None,
        initial_prompt: Annotated[str | None, _query("text to guide the style")] = None,
        encode: Annotated[str | None, _query("false: the upload is raw 16 kHz s16le PCM")] = None,
        vad_filter: Annotated[str | None, _query("skip parts without speech")] = None,
        word_timestamps: Annotated[str | None, _query("word-level timing")] = None,
        model: Annotated[str | None, _query("a model name; omit for the server's")] = None,
        max_line_width: Annotated[str | None, _query("srt/vtt: characters per line")] = None,
        max_line_count: Annotated[str | None, _query("srt/vtt: lines per cue")] = None,
        max_words_per_cue: Annotated[str | None, _query("srt/vtt: words per cue")] = None,
        diarize: Annotated[str | None, _query("true: label who speaks (A, B, ...)")] = None,
        min_speakers: Annotated[str | None, _query("diarize: at least this many")] = None,
        max_speakers: Annotated[str | None, _query("diarize: at most this many")] = None,
    ) -> Response[Any]:
        """The transcript as an attachment in the asked format, with the Asr-Engine header."""
        fmt = _choice(output, ASR_OUTPUTS, "output", "txt")
        translate = _choice(task, ASR_TASKS, "task", "transcribe") == "translate"
        task_type: TaskType = "translate" if translate else "transcribe"
        shape = parse_subtitle_shape(
            {
                "max_line_width": max_line_width,
                "max_line_count": max_line_count,
                "max_words_per_cue": max_words_per_cue,
            }
        )
        words = parse_bool(word_timestamps, "word_timestamps")
        options = TranscribeOptions(
            task=task_type,
            language=parse_language(language),
            initial_prompt=initial_prompt or None,
            vad_filter=parse_bool(vad_filter, "vad_filter"),
            word_timestamps=words or not shape.is_plain,
            model=parse_model(model, service.models),
        )
        speaker_fields = {
            "diarize": diarize,
            "min_speakers": min_speakers,
            "max_speakers": max_speakers,
        }
        speakers = parse_speaker_options(speaker_fields.get, keep_words=words)
        options = with_speakers(options, speakers)
        outcome = await _run_job(
            request,
            service,
            task_type=task_type,
            options=options,
            encode=parse_bool(encode, "encode", default=True),
        )
        if isinstance(outcome, Response):
            return outcome
        job, upload = outcome
        try:
            return _attachment(job, upload, fmt, shape)
        finally:
            service.forget(job)

    @post(
        "/detect-language",
        responses=error_responses(400, 413, 500, 503, shape=AsrError),
        summary="Detect the spoken language (whisper-asr-webservice-compatible)",
        operation_class=_UPLOAD_OPERATION,
        status_code=200,
    )
    async def detect_language(
        self,
        request: Request[Any, Any, Any],
        service: Service,
        encode: Annotated[str | None, _query("false: the upload is raw 16 kHz s16le PCM")] = None,
    ) -> Response[Any]:
        """The likeliest language over the speech of the whole upload, and the runners-up."""
        options = TranscribeOptions(task="detect")
        outcome = await _run_job(
            request,
            service,
            task_type="detect",
            options=options,
            encode=parse_bool(encode, "encode", default=True),
        )
        if isinstance(outcome, Response):
            return outcome
        job, _ = outcome
        detection = job.detection
        service.forget(job)
        if detection is None:
            return asr_error_response(HTTP_500_INTERNAL_SERVER_ERROR, "no language was detected")
        candidates = [
            DetectedLanguage(
                detected_language=language_name(candidate.language_code),
                language_code=candidate.language_code,
                confidence=candidate.probability,
            )
            for candidate in detection.candidates
        ]
        best = candidates[0]
        return Response(
            LanguageDetectionResponse(
                detected_language=best.detected_language,
                language_code=best.language_code,
                confidence=best.confidence,
                candidates=candidates,
            ),
            headers={"Asr-Engine": ASR_ENGINE},
        )


def _attachment(job: Job, upload: FilePart, fmt: str, shape: SubtitleShape) -> Response[bytes]:
    assert job.transcript is not None
    return Response(
        content=formats.render(job.transcript, fmt, shape=shape, task=job.task_type),
        media_type=formats.MEDIA_TYPES[fmt],
        headers={
            "Asr-Engine": ASR_ENGINE,
            "Content-Disposition": content_disposition(upload.filename, fmt),
        },
    )
