"""OpenAI-compatible speech-to-text: /v1/audio/transcriptions, /v1/audio/translations, /v1/models.

Requests go through the same intake (queue, models, privacy rules) as the task API;
the route waits for its job, and a client that goes away cancels it. Errors use
OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, on every path.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Response, get
from litestar.params import PathParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

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
from app.api.form_options import parse_language, parse_model
from app.api.forms import Language, ShapedForm
from app.api.intake import AnyRequest, Intake, answer_when_done, cancel_abandoned, receive_upload
from app.api.results import response_media_type
from app.api.schemas import error_responses
from app.api.speaker_options import parse_speaker_options, with_speakers
from app.service import JobSpec, TranscriptionService
from app.service.errors import ErrorView, InvalidInputError
from app.transcription import formats
from app.transcription.jobs import Job, JobStatus
from app.transcription.types import TaskType, TranscribeOptions, Transcript

__all__ = ["OPENAI_DEFAULT_MODEL", "OpenAIController", "openai_error"]

OPENAI_DEFAULT_MODEL = "whisper-1"
# OpenAI's speaker-label model: here the server's Whisper model plus the speaker stage.
OPENAI_DIARIZE_MODEL = "gpt-4o-transcribe-diarize"
OpenAIFormat = Literal["json", "text", "srt", "verbose_json", "vtt", "diarized_json"]
Granularity = Literal["segment", "word"]
Temperature = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
# Whisper's own fallback ladder: temperature 0 means "start greedy, raise it on failure".
AUTOMATIC_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
SSE_KEEPALIVE_S = 15.0
_STARTED = int(time.time())

# What an upload route answers: the body in the asked format, or a stream of events.
Answer = Response[Any] | ServerSentEvent
ModelIdPath = Annotated[str, PathParameter(description="a model id from GET /v1/models")]


class OpenAIForm(ShapedForm, kw_only=True):
    """The fields of OpenAI's transcription and translation requests."""

    model: Annotated[
        str | None,
        msgspec.Meta(
            description=f"{OPENAI_DEFAULT_MODEL} (the server's choice) or a model name "
            "from GET /v1/models",
            examples=[OPENAI_DEFAULT_MODEL],
        ),
    ] = None
    language: Language = None
    prompt: Annotated[
        str | None,
        msgspec.Meta(
            description="text to guide the style or continue a previous segment", examples=[""]
        ),
    ] = None
    response_format: Annotated[OpenAIFormat, msgspec.Meta(description="output format")] = "json"
    temperature: Annotated[
        Temperature | None,
        msgspec.Meta(
            description="0 to 1; 0 raises the temperature automatically on failure", examples=[0]
        ),
    ] = None
    timestamp_granularities: Annotated[
        list[Granularity],
        msgspec.Meta(description="segment and/or word (word needs response_format=verbose_json)"),
    ] = msgspec.field(default_factory=list, name="timestamp_granularities[]")
    stream: Annotated[
        bool,
        msgspec.Meta(
            description="true: server-sent transcript.text.delta events (diarized_json: then "
            "one transcript.text.segment per segment), then .done"
        ),
    ] = False
    known_speaker_names: Annotated[
        list[str], msgspec.Meta(description="diarized_json: names of up to 4 known speakers")
    ] = msgspec.field(default_factory=list, name="known_speaker_names[]")
    known_speaker_references: Annotated[
        list[str],
        msgspec.Meta(
            description="diarized_json: a short clip of each known speaker as a data URL "
            "(data:audio/wav;base64,...)"
        ),
    ] = msgspec.field(default_factory=list, name="known_speaker_references[]")
    chunking_strategy: Annotated[
        str | None,
        msgspec.Meta(description="accepted; the server cuts audio by VAD", examples=["auto"]),
    ] = None

    @property
    def granularities(self) -> tuple[Granularity, ...]:
        """The asked timestamp granularities, each once."""
        return tuple(dict.fromkeys(self.timestamp_granularities))

    @property
    def diarized(self) -> bool:
        """Whether speaker labels are asked for (response_format=diarized_json)."""
        return self.response_format == "diarized_json"

    def to_spec(self, service: TranscriptionService, task: TaskType, owner: str | None) -> JobSpec:
        """The job these fields ask for (InvalidInputError naming a bad one).

        Their types are checked already; left are the rules between fields, the
        language, the model and the known speakers.
        """
        if self.timestamp_granularities and self.response_format != "verbose_json":
            raise InvalidInputError(
                "timestamp_granularities needs response_format=verbose_json",
                param="timestamp_granularities",
            )
        if self.diarized and task == "translate":
            raise InvalidInputError(
                "diarized_json is for transcriptions only", param="response_format"
            )
        words = "word" in self.granularities
        options = TranscribeOptions(
            task=task,
            language=parse_language(self.language),
            initial_prompt=self.prompt or None,
            word_timestamps=words,
            temperature=_temperatures(self.temperature),
            model=parse_model(
                self.model,
                service.models,
                default_aliases=(OPENAI_DEFAULT_MODEL, OPENAI_DIARIZE_MODEL),
            ),
        )
        speakers = parse_speaker_options(
            diarize=self.diarized,
            names=self.known_speaker_names,
            references=self.known_speaker_references,
            keep_words=words,
        )
        return JobSpec(
            task_type=task,
            options=with_speakers(options, speakers),
            subtitle_shape=self.shape,
            owner=owner,
            surface="openai",
        )


OPENAI_INTAKE = Intake(
    surface="openai",
    form=OpenAIForm,
    errors=error_responses(400, 413, 500, 503, shape=OpenAIErrorBody),
    query_options=False,
    # response_format text, srt and vtt; stream=true answers with server-sent events.
    answers=(*(response_media_type(fmt) for fmt in ("txt", "srt", "vtt")), "text/event-stream"),
)


def _temperatures(value: float | None) -> float | tuple[float, ...]:
    """One sampling temperature, or Whisper's fallback ladder for none or 0."""
    return AUTOMATIC_TEMPERATURES if not value else (value,)


# ---------------------------------------------------------------- errors


def _error_type(status_code: int) -> str:
    if status_code == 429:
        return "rate_limit_error"
    if status_code >= 500:
        return "server_error"
    return "invalid_request_error"


def openai_error(view: ErrorView) -> Response[OpenAIErrorBody]:
    """Any error of this surface in OpenAI's shape."""
    error = OpenAIError(
        message=view.message, type=_error_type(view.status), param=view.param, code=view.code
    )
    return Response(OpenAIErrorBody(error=error), status_code=view.status, headers=view.headers)


# ---------------------------------------------------------------- responses


def _usage(transcript: Transcript) -> OpenAIUsage:
    return OpenAIUsage(seconds=math.ceil(max(0.0, transcript.duration)))


def render_openai(job: Job, request: OpenAIForm) -> Response[Any]:
    """The finished job in the asked response_format, with OpenAI's content types."""
    transcript = job.transcript
    assert transcript is not None
    fmt = request.response_format
    if fmt == "json":
        return Response(OpenAITranscription(text=transcript.text, usage=_usage(transcript)))
    if fmt == "text":
        return Response(transcript.text + "\n", media_type=response_media_type("txt"))
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
    return Response(
        formats.render(transcript, fmt, shape=request.shape), media_type=response_media_type(fmt)
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
            changed = service.notifier.token(job)
            # Read before yielding: a job that ends meanwhile is flushed on the next round.
            final = job.is_final
            segments = job.transcript.segments if job.transcript else job.partial_segments
            while sent < len(segments):
                text = segments[sent].text
                yield _sse(TextDeltaEvent(delta=text.lstrip() if sent == 0 else text))
                sent += 1
            if final:
                break
            if not await service.notifier.wait(changed, max_wait_s=SSE_KEEPALIVE_S):
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
        if job.is_final:
            await service.forget(job)
        else:
            await cancel_abandoned(service, job)


async def _answer(
    request: AnyRequest, service: TranscriptionService, owner: str | None, task: TaskType
) -> Answer:
    """Queue the upload of `request`, then answer in its response_format or stream it."""
    job, form = await receive_upload(
        request, service, OPENAI_INTAKE, lambda form: form.to_spec(service, task, owner)
    )
    if form.stream:
        return ServerSentEvent(stream_transcript(service, job, diarized=form.diarized))
    return await answer_when_done(request, service, job, lambda done: render_openai(done, form))


# ---------------------------------------------------------------- controller


class OpenAIController(Controller):
    """The routes OpenAI's SDKs and the tools built on them call."""

    path = "/v1"
    tags = ["openai"]

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
            return openai_error(
                ErrorView(
                    status=404,
                    code="model_not_found",
                    message=f"the model {model_id!r} does not exist on this server",
                    param="model",
                )
            )
        return Response(_model(model_id))

    @OPENAI_INTAKE.route("/audio/transcriptions", "Transcribe audio (OpenAI-compatible)")
    async def transcriptions(self, request: AnyRequest, service: Service, owner: Owner) -> Answer:
        """Transcribe an upload in its own language, as OpenAI's audio API does."""
        return await _answer(request, service, owner, "transcribe")

    @OPENAI_INTAKE.route(
        "/audio/translations", "Translate audio into English text (OpenAI-compatible)"
    )
    async def translations(self, request: AnyRequest, service: Service, owner: Owner) -> Answer:
        """Translate an upload into English text, as OpenAI's audio API does."""
        return await _answer(request, service, owner, "translate")


def _model_ids(service: TranscriptionService) -> list[str]:
    """What can run now: in a cluster, what the live workers offer (nothing without one)."""
    runnable = service.runnable_models()
    if service.worker is None and not runnable:
        return []  # an API node whose fleet has no live worker
    return [OPENAI_DEFAULT_MODEL, OPENAI_DIARIZE_MODEL, *runnable]


def _model(name: str) -> OpenAIModel:
    return OpenAIModel(id=name, created=_STARTED)
