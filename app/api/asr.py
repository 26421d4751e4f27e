"""whisper-asr-webservice-compatible routes: POST /asr and POST /detect-language.

Bazarr, subgen and other subtitle tools call these with the upload in the multipart
field `audio_file` and the options in the query string; with `encode=false` the
upload is raw 16 kHz mono s16le PCM. Answers carry the webservice's headers and,
on errors, its (FastAPI's) shape `{"detail": "..."}`. Jobs go through the same
queue and models as every other surface.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, post

from app.api import form_options as opts
from app.api.compat_schemas import AsrError, DetectedLanguage, LanguageDetectionResponse
from app.api.dependencies import Owner, Service
from app.api.forms import WhisperForm, upload_operation
from app.api.intake import Intake, answer_when_done, receive_upload
from app.api.schemas import error_responses
from app.api.tasks import content_disposition
from app.service import JobSpec, TranscriptionService
from app.service.errors import ErrorView, InvalidInputError, JobFailedError
from app.transcription import formats
from app.transcription.jobs import Job
from app.transcription.languages import language_name
from app.transcription.types import SubtitleShape, TaskType, TranscribeOptions

__all__ = ["ASR_ENGINE", "ASR_OUTPUTS", "AsrController", "asr_error"]


ASR_ENGINE = "faster_whisper"
ASR_OUTPUTS = ("txt", "vtt", "srt", "tsv", "json")
ASR_TASKS = ("transcribe", "translate")
ASR_INTAKE = Intake(surface="asr", file_field="audio_file")

_ENCODE_HELP = "false: the upload is raw 16 kHz s16le PCM"


class DetectLanguageQuery(msgspec.Struct, kw_only=True):
    """The query string of POST /detect-language."""

    encode: Annotated[str | None, msgspec.Meta(description=_ENCODE_HELP)] = None

    def to_spec(self, owner: str | None) -> JobSpec:
        """A language detection job."""
        return JobSpec(
            task_type="detect",
            options=TranscribeOptions(task="detect"),
            owner=owner,
            surface="asr",
            raw_pcm=not opts.parse_bool(self.encode, "encode", default=True),
        )


class AsrQuery(WhisperForm, kw_only=True):
    """The query string of POST /asr, as whisper-asr-webservice reads it."""

    output: Annotated[
        str | None,
        msgspec.Meta(
            description="txt, vtt, srt, tsv or json", extra_json_schema={"enum": list(ASR_OUTPUTS)}
        ),
    ] = None
    task: Annotated[
        str | None,
        msgspec.Meta(
            description="transcribe or translate", extra_json_schema={"enum": list(ASR_TASKS)}
        ),
    ] = None
    encode: Annotated[str | None, msgspec.Meta(description=_ENCODE_HELP)] = None

    @property
    def fmt(self) -> str:
        """The asked output format."""
        return _choice(self.output, ASR_OUTPUTS, "output", "txt")

    def to_transcription_spec(self, service: TranscriptionService, owner: str | None) -> JobSpec:
        """Check every parameter; raise InvalidInputError naming the bad one."""
        self.fmt  # noqa: B018 - refuse a bad value before the job is queued
        translate = _choice(self.task, ASR_TASKS, "task", "transcribe") == "translate"
        task_type: TaskType = "translate" if translate else "transcribe"
        raw_pcm = not opts.parse_bool(self.encode, "encode", default=True)
        return self.spec(service, task_type=task_type, owner=owner, surface="asr", raw_pcm=raw_pcm)


def _operation(form: type[msgspec.Struct]) -> Any:
    return upload_operation(
        form,
        file_field="audio_file",
        file_description="the audio (or raw 16 kHz s16le PCM with encode=false)",
        description="multipart/form-data with the audio in the `audio_file` field",
        fields_in_query=True,
    )


def asr_error(view: ErrorView) -> Response[AsrError]:
    """Any error of this surface in whisper-asr-webservice's (FastAPI's) shape."""
    return Response(AsrError(detail=view.message), status_code=view.status, headers=view.headers)


def _choice(value: str | None, allowed: tuple[str, ...], name: str, default: str) -> str:
    chosen = (value or default).strip().lower()
    if chosen not in allowed:
        raise InvalidInputError(
            f"{name} must be one of {', '.join(allowed)}, not {value!r}", param=name
        )
    return chosen


class AsrController(Controller):
    """The routes of whisper-asr-webservice, for Bazarr, subgen and similar tools."""

    tags = ["whisper-asr-webservice"]

    @post(
        "/asr",
        responses=error_responses(400, 413, 500, 503, shape=AsrError),
        summary="Transcribe or translate (whisper-asr-webservice-compatible)",
        operation_class=_operation(AsrQuery),
        status_code=200,
    )
    async def asr(
        self, request: Request[Any, Any, Any], service: Service, owner: Owner
    ) -> Response[Any]:
        """The transcript as an attachment in the asked format, with the Asr-Engine header."""
        job, query = await receive_upload(
            request,
            service,
            ASR_INTAKE,
            AsrQuery,
            lambda form: form.to_transcription_spec(service, owner),
        )
        return await answer_when_done(
            request, service, job, lambda done: _attachment(done, query.fmt, query.shape)
        )

    @post(
        "/detect-language",
        responses=error_responses(400, 413, 500, 503, shape=AsrError),
        summary="Detect the spoken language (whisper-asr-webservice-compatible)",
        operation_class=_operation(DetectLanguageQuery),
        status_code=200,
    )
    async def detect_language(
        self, request: Request[Any, Any, Any], service: Service, owner: Owner
    ) -> Response[Any]:
        """The likeliest language over the speech of the whole upload, and the runners-up."""
        job, _ = await receive_upload(
            request, service, ASR_INTAKE, DetectLanguageQuery, lambda form: form.to_spec(owner)
        )
        return await answer_when_done(request, service, job, _detected_language)


def _detected_language(job: Job) -> Response[Any]:
    """The detection of a finished job in whisper-asr-webservice's shape."""
    detection = job.detection
    if detection is None:
        raise JobFailedError("no language was detected")
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


def _attachment(job: Job, fmt: str, shape: SubtitleShape) -> Response[bytes]:
    assert job.transcript is not None
    return Response(
        content=formats.render(job.transcript, fmt, shape=shape, task=job.task_type),
        media_type=formats.MEDIA_TYPES[fmt],
        headers={
            "Asr-Engine": ASR_ENGINE,
            "Content-Disposition": content_disposition(job.file_name, fmt),
        },
    )
