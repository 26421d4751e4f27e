"""OpenAI's Realtime transcription protocol: client events in, server events out.

Pure functions over JSON-shaped dicts. The GA shape (`session.update` with
`session.type == "transcription"` and `session.audio.input`) and the beta alias
(`transcription_session.update` with flat `input_audio_format`,
`input_audio_transcription`, `turn_detection`) both become a `LiveConfig`; a
session's events become the GA server events. Extra data OpenAI clients do not
know (word timings, the unstable tail) goes in `x.whisper_api.*` events: an
event type no OpenAI client handles, so they pass it by (the Python SDK parses
unknown types leniently instead of failing).
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any, cast

from app.api import form_options as opts
from app.service.errors import InvalidInputError
from app.transcription.live.audio import INPUT_RATE, TurnDetection
from app.transcription.live.events import (
    Cleared,
    Committed,
    Completed,
    Delta,
    LiveEvent,
    SpeechStarted,
    SpeechStopped,
    TurnDropped,
    TurnFailed,
    TurnPending,
)
from app.transcription.live.noise import NOISE_REDUCTIONS, NoiseReduction
from app.transcription.live.session import LiveConfig
from app.transcription.models import ModelManager

__all__ = [
    "BETA_UPDATE",
    "GA_UPDATE",
    "KEEP_EVENT",
    "ProtocolError",
    "error_event",
    "event_id",
    "render",
    "session_event",
    "task_created_event",
    "updated_config",
]

GA_UPDATE = "session.update"
BETA_UPDATE = "transcription_session.update"
# This server's own client event: keep the session's completed turns as a finished task.
KEEP_EVENT = "x.whisper_api.session.keep"


class ProtocolError(Exception):
    """A client event the server cannot follow; becomes an `error` event, the session goes on."""

    def __init__(self, message: str, *, code: str = "invalid_value", param: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param


def event_id() -> str:
    """A fresh server event id."""
    return "event_" + secrets.token_hex(10)


def error_event(
    message: str, *, code: str, param: str | None = None, client_event: str | None = None
) -> dict[str, Any]:
    """An `error` event in OpenAI's shape."""
    return {
        "type": "error",
        "event_id": event_id(),
        "error": {
            "type": "invalid_request_error",
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event,
        },
    }


# -- session.update and its beta alias


def updated_config(
    event: dict[str, Any], current: LiveConfig, models: ModelManager, aliases: tuple[str, ...]
) -> LiveConfig:
    """The session's settings after a `session.update` (or the beta alias); ProtocolError if bad."""
    session = event.get("session")
    if not isinstance(session, dict):
        raise ProtocolError("session must be an object", param="session")
    beta = event.get("type") == BETA_UPDATE
    fields = _beta_fields(session) if beta else _ga_fields(session)
    transcription = fields.get("transcription")
    changes: dict[str, Any] = {}
    if isinstance(transcription, dict):
        changes |= _transcription(transcription, models, aliases)
    if "turn_detection" in fields:
        changes["turn_detection"] = _turn_detection(fields["turn_detection"])
    if "noise_reduction" in fields:
        changes["noise_reduction"] = _noise_reduction(fields["noise_reduction"])
    return dataclasses.replace(current, **changes)


def _ga_fields(session: dict[str, Any]) -> dict[str, Any]:
    kind = session.get("type", "transcription")
    if kind != "transcription":
        raise ProtocolError(
            "this server only transcribes: connect with ?intent=transcription and send "
            'session.type "transcription"',
            code="invalid_value",
            param="session.type",
        )
    audio = session.get("audio") or {}
    given = audio.get("input") or {} if isinstance(audio, dict) else {}
    if not isinstance(given, dict):
        raise ProtocolError("session.audio.input must be an object", param="session.audio.input")
    _check_format(given.get("format"))
    return given


def _beta_fields(session: dict[str, Any]) -> dict[str, Any]:
    audio_format = session.get("input_audio_format")
    if audio_format not in (None, "pcm16"):
        raise ProtocolError(
            f"input_audio_format must be pcm16, not {audio_format!r}",
            param="session.input_audio_format",
        )
    fields: dict[str, Any] = {"transcription": session.get("input_audio_transcription")}
    if "turn_detection" in session:
        fields["turn_detection"] = session["turn_detection"]
    if "input_audio_noise_reduction" in session:
        fields["noise_reduction"] = session["input_audio_noise_reduction"]
    return fields


def _check_format(audio_format: Any) -> None:
    if audio_format is None:
        return
    if not isinstance(audio_format, dict) or audio_format.get("type", "audio/pcm") != "audio/pcm":
        raise ProtocolError(
            "only audio/pcm (16-bit, 24 kHz, mono) is accepted",
            param="session.audio.input.format.type",
        )
    if audio_format.get("rate", INPUT_RATE) != INPUT_RATE:
        raise ProtocolError(
            "audio/pcm must be sampled at 24000 Hz", param="session.audio.input.format.rate"
        )


def _transcription(
    given: dict[str, Any], models: ModelManager, aliases: tuple[str, ...]
) -> dict[str, Any]:
    try:
        language = opts.parse_language(given.get("language"))
        model = opts.parse_model(given.get("model"), models, default_aliases=aliases)
    except InvalidInputError as exc:
        raise ProtocolError(
            exc.message, code=exc.code or "invalid_value", param=f"transcription.{exc.param}"
        ) from None
    prompt = given.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise ProtocolError("transcription.prompt must be a string", param="transcription.prompt")
    return {"language": language, "model": model, "prompt": prompt or None}


def _noise_reduction(given: Any) -> NoiseReduction | None:
    if given is None:
        return None
    kind = given.get("type") if isinstance(given, dict) else None
    if kind not in NOISE_REDUCTIONS:
        raise ProtocolError(
            "noise_reduction must be null or of type near_field or far_field",
            param="noise_reduction.type",
        )
    return cast("NoiseReduction", kind)


def _turn_detection(given: Any) -> TurnDetection | None:
    if given is None:
        return None
    if not isinstance(given, dict) or given.get("type") not in ("server_vad", "semantic_vad"):
        raise ProtocolError(
            "turn_detection must be null or of type server_vad", param="turn_detection.type"
        )
    default = TurnDetection()
    try:
        detection = TurnDetection(
            threshold=float(given.get("threshold") or default.threshold),
            prefix_padding_ms=int(given.get("prefix_padding_ms") or default.prefix_padding_ms),
            silence_duration_ms=int(
                given.get("silence_duration_ms") or default.silence_duration_ms
            ),
        )
    except (TypeError, ValueError):
        raise ProtocolError("turn_detection has a value that is not a number") from None
    if not 0.0 < detection.threshold < 1.0 or detection.silence_duration_ms < 32:
        raise ProtocolError(
            "turn_detection.threshold must lie between 0 and 1 and silence_duration_ms "
            "be at least 32",
            param="turn_detection",
        )
    return detection


# -- server events


def session_event(
    kind: str, session_id: str, config: LiveConfig, model_name: str, *, beta: bool
) -> dict[str, Any]:
    """`session.created` / `session.updated` (or the beta names) describing the session."""
    transcription = {
        "model": config.model or model_name,
        "language": config.language,
        "prompt": config.prompt,
    }
    detection = _detection_json(config.turn_detection)
    noise = {"type": config.noise_reduction} if config.noise_reduction else None
    if beta:
        session: dict[str, Any] = {
            "id": session_id,
            "object": "realtime.transcription_session",
            "input_audio_format": "pcm16",
            "input_audio_transcription": transcription,
            "turn_detection": detection,
            "input_audio_noise_reduction": noise,
        }
        kind = "transcription_session." + kind
    else:
        session = {
            "type": "transcription",
            "id": session_id,
            "object": "realtime.transcription_session",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": INPUT_RATE},
                    "transcription": transcription,
                    "turn_detection": detection,
                    "noise_reduction": noise,
                }
            },
        }
        kind = "session." + kind
    return {"type": kind, "event_id": event_id(), "session": session}


def _detection_json(detection: TurnDetection | None) -> dict[str, Any] | None:
    if detection is None:
        return None
    return {
        "type": "server_vad",
        "threshold": detection.threshold,
        "prefix_padding_ms": detection.prefix_padding_ms,
        "silence_duration_ms": detection.silence_duration_ms,
    }


def render(event: LiveEvent) -> list[dict[str, Any]]:
    """The server events for one session event, in the order they are sent."""
    base = {"event_id": event_id()}
    match event:
        case SpeechStarted(item_id, start_ms):
            kind = "input_audio_buffer.speech_started"
            return [base | {"type": kind, "item_id": item_id, "audio_start_ms": start_ms}]
        case SpeechStopped(item_id, end_ms):
            kind = "input_audio_buffer.speech_stopped"
            return [base | {"type": kind, "item_id": item_id, "audio_end_ms": end_ms}]
        case Committed(item_id, previous):
            kind = "input_audio_buffer.committed"
            return [base | {"type": kind, "item_id": item_id, "previous_item_id": previous}]
        case Cleared():
            return [base | {"type": "input_audio_buffer.cleared"}]
        case TurnPending(item_id, start_ms):
            kind = "x.whisper_api.turn.pending"
            return [base | {"type": kind, "item_id": item_id, "audio_start_ms": start_ms}]
        case TurnDropped(item_id):
            return [base | {"type": "x.whisper_api.turn.dropped", "item_id": item_id}]
        case Delta():
            return _delta(event, base)
        case Completed(item_id, transcript, seconds):
            return [
                base
                | {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item_id,
                    "content_index": 0,
                    "transcript": transcript,
                    "usage": {"type": "duration", "seconds": round(seconds, 3)},
                }
            ]
        case TurnFailed(item_id, message):
            return [
                base
                | {
                    "type": "conversation.item.input_audio_transcription.failed",
                    "item_id": item_id,
                    "content_index": 0,
                    "error": {
                        "type": "server_error",
                        "code": "transcription_failed",
                        "message": message,
                    },
                }
            ]
    raise AssertionError(f"unknown live event {event!r}")


def _delta(event: Delta, base: dict[str, Any]) -> list[dict[str, Any]]:
    words = [
        {"word": w.word, "start_ms": round(w.start * 1000), "end_ms": round(w.end * 1000)}
        for w in event.words
    ]
    return [
        base
        | {
            "type": "conversation.item.input_audio_transcription.delta",
            "item_id": event.item_id,
            "content_index": 0,
            "delta": event.text,
        },
        {
            "type": "x.whisper_api.transcription.words",
            "event_id": event_id(),
            "item_id": event.item_id,
            "words": words,
            "tail": event.tail,
        },
    ]


def task_created_event(task_id: str, turns: int) -> dict[str, Any]:
    """The answer to `x.whisper_api.session.keep`: where the kept task can be read."""
    return {
        "type": "x.whisper_api.task.created",
        "event_id": event_id(),
        "task_id": task_id,
        "turns": turns,
        "url": f"/api/v1/tasks/{task_id}",
    }
