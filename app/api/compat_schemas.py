"""msgspec structs of the compatibility surfaces: OpenAI's audio API and whisper-asr-webservice."""

from __future__ import annotations

import msgspec

__all__ = [
    "AsrError",
    "DetectedLanguage",
    "LanguageDetectionResponse",
    "OpenAIError",
    "OpenAIErrorBody",
    "OpenAIModel",
    "OpenAIModelList",
    "OpenAITranscription",
    "OpenAIUsage",
    "TextDeltaEvent",
    "TextDoneEvent",
]


class OpenAIError(msgspec.Struct, kw_only=True):
    """The inside of OpenAI's error body."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorBody(msgspec.Struct):
    """OpenAI's error shape: `{"error": {"message", "type", "param", "code"}}`."""

    error: OpenAIError


class OpenAIUsage(msgspec.Struct, kw_only=True):
    """Usage billed by audio duration, in whole seconds rounded up."""

    type: str = "duration"
    seconds: int


class OpenAITranscription(msgspec.Struct, kw_only=True):
    """`response_format=json`: the text and the usage."""

    text: str
    usage: OpenAIUsage


class OpenAIModel(msgspec.Struct, kw_only=True):
    """One entry of /v1/models."""

    id: str
    object: str = "model"
    created: int
    owned_by: str = "whisper-api"


class OpenAIModelList(msgspec.Struct, kw_only=True):
    """The answer of /v1/models."""

    object: str = "list"
    data: list[OpenAIModel]


class TextDeltaEvent(msgspec.Struct, kw_only=True):
    """A streamed piece of text: one decoded segment."""

    type: str = "transcript.text.delta"
    delta: str


class TextDoneEvent(msgspec.Struct, kw_only=True):
    """The last streamed event: the whole text and the usage."""

    type: str = "transcript.text.done"
    text: str
    usage: OpenAIUsage


class AsrError(msgspec.Struct):
    """whisper-asr-webservice's (FastAPI's) error shape: `{"detail": "..."}`."""

    detail: str


class DetectedLanguage(msgspec.Struct, kw_only=True):
    """A language, its Whisper code, and how sure the model is."""

    detected_language: str
    language_code: str
    confidence: float


class LanguageDetectionResponse(msgspec.Struct, kw_only=True):
    """/detect-language: whisper-asr-webservice's three fields plus the runners-up."""

    detected_language: str
    language_code: str
    confidence: float
    candidates: list[DetectedLanguage]
