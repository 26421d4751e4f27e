"""whisper-asr-webservice-compatible routes: POST /asr and POST /detect-language.

Bazarr, subgen and other subtitle tools call these with the upload in the multipart
field `audio_file` and the options in the query string; with `encode=false` the
upload is raw 16 kHz mono s16le PCM. Answers carry the webservice's headers and,
on errors, its (FastAPI's) shape `{"detail": "..."}`. Jobs go through the same
queue and models as every other surface.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar, get_args

import msgspec
from litestar import Controller, Response

from app.api.compat_schemas import AsrError, DetectedLanguage, LanguageDetectionResponse
from app.api.dependencies import Owner, Service
from app.api.forms import ANY_CASE, WhisperForm
from app.api.intake import AnyRequest, Intake, answer_when_done, receive_upload
from app.api.results import response_media_type, transcript_download
from app.api.schemas import error_responses
from app.service import JobSpec, TranscriptionService
from app.service.errors import ErrorView, JobFailedError
from app.transcription.jobs import Job
from app.transcription.languages import language_name
from app.transcription.types import TranscribeOptions

__all__ = ["ASR_ENGINE", "AsrController", "asr_error"]


ASR_ENGINE = "faster_whisper"
_ENGINE_HEADER = {"Asr-Engine": ASR_ENGINE}
FormT = TypeVar("FormT", bound=msgspec.Struct)

AsrOutput = Literal["txt", "vtt", "srt", "tsv", "json"]
Encode = Annotated[bool, msgspec.Meta(description="false: the upload is raw 16 kHz s16le PCM")]


class DetectLanguageQuery(msgspec.Struct, kw_only=True):
    """The query string of POST /detect-language."""

    encode: Encode = True

    def to_spec(self, owner: str | None) -> JobSpec:
        """A language detection job."""
        return JobSpec(
            task_type="detect",
            options=TranscribeOptions(task="detect"),
            owner=owner,
            surface="asr",
            raw_pcm=not self.encode,
        )


class AsrQuery(WhisperForm, kw_only=True):
    """The query string of POST /asr, as whisper-asr-webservice reads it."""

    # Its clients may send their choices in any case (output=SRT); the webservice took them.
    output: Annotated[
        AsrOutput, msgspec.Meta(description="txt, vtt, srt, tsv or json", extra=ANY_CASE)
    ] = "txt"
    task: Annotated[
        Literal["transcribe", "translate"],
        msgspec.Meta(description="transcribe or translate", extra=ANY_CASE),
    ] = "transcribe"
    encode: Encode = True

    def to_transcription_spec(self, service: TranscriptionService, owner: str | None) -> JobSpec:
        """The job these parameters ask for (InvalidInputError naming a bad one)."""
        # Only subtitles need every word timed: txt, tsv and json skip the alignment's cost
        # (the decoding is the same either way, app.transcription.cue_timing).
        return self.spec(
            service,
            task_type=self.task,
            owner=owner,
            surface="asr",
            raw_pcm=not self.encode,
            cues_wanted=self.output in ("srt", "vtt"),
        )


def _intake(form_type: type[FormT], answers: tuple[str, ...] = ()) -> Intake[FormT]:
    """The webservice's intake: the audio in `audio_file`, the options in the query string."""
    return Intake(
        surface="asr",
        form=form_type,
        errors=error_responses(400, 413, 500, 503, shape=AsrError),
        file_field="audio_file",
        file_description="the audio (or raw 16 kHz s16le PCM with encode=false)",
        options_documented_in="query",
        answers=answers,
    )


ASR_INTAKE = _intake(
    AsrQuery, answers=tuple(response_media_type(fmt) for fmt in get_args(AsrOutput))
)
DETECT_INTAKE = _intake(DetectLanguageQuery)


def asr_error(view: ErrorView) -> Response[AsrError]:
    """Any error of this surface in whisper-asr-webservice's (FastAPI's) shape."""
    return Response(AsrError(detail=view.message), status_code=view.status, headers=view.headers)


class AsrController(Controller):
    """The routes of whisper-asr-webservice, for Bazarr, subgen and similar tools."""

    tags = ["whisper-asr-webservice"]

    @ASR_INTAKE.route("/asr", "Transcribe or translate (whisper-asr-webservice-compatible)")
    async def asr(self, request: AnyRequest, service: Service, owner: Owner) -> Response[Any]:
        """The transcript as an attachment in the asked format, with the Asr-Engine header."""
        job, query = await receive_upload(
            request, service, ASR_INTAKE, lambda form: form.to_transcription_spec(service, owner)
        )
        return await answer_when_done(
            request,
            service,
            job,
            lambda done: transcript_download(done, query.output, headers=_ENGINE_HEADER),
        )

    @DETECT_INTAKE.route(
        "/detect-language", "Detect the spoken language (whisper-asr-webservice-compatible)"
    )
    async def detect_language(
        self, request: AnyRequest, service: Service, owner: Owner
    ) -> Response[Any]:
        """The likeliest language over the speech of the whole upload, and the runners-up."""
        job, _ = await receive_upload(
            request, service, DETECT_INTAKE, lambda form: form.to_spec(owner)
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
        headers=_ENGINE_HEADER,
    )
