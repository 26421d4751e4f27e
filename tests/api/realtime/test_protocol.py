"""The Realtime protocol's shapes: GA and beta session updates in, server events out."""

from __future__ import annotations

import pytest

from app.api.realtime.protocol import (
    ProtocolError,
    error_event,
    render,
    session_event,
    updated_config,
)
from app.service.live import OPENAI_LIVE_MODELS
from app.transcription.live.audio import TurnDetection
from app.transcription.live.events import Completed, Delta, TurnDropped, TurnPending
from app.transcription.live.session import LiveConfig
from app.transcription.models import ModelManager
from app.transcription.types import Word
from tests.conftest import FakeTranscriber, fake_manager, make_settings


@pytest.fixture
def models() -> ModelManager:
    """A manager that knows the catalogue (no model is loaded here)."""
    return fake_manager(make_settings(), FakeTranscriber(), available={"tiny.en", "base"})


def test_ga_session_update_sets_language_prompt_model_and_turn_detection(
    models: ModelManager,
) -> None:
    """session.update with session.audio.input fills the whole live configuration."""
    event = {
        "type": "session.update",
        "session": {
            "type": "transcription",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "transcription": {"model": "base", "language": "de", "prompt": "Namen"},
                    "turn_detection": {"type": "server_vad", "silence_duration_ms": 700},
                }
            },
        },
    }
    config = updated_config(event, LiveConfig(), models, OPENAI_LIVE_MODELS)
    assert (config.language, config.model, config.prompt) == ("de", "base", "Namen")
    assert config.turn_detection == TurnDetection(silence_duration_ms=700)


def test_openai_model_names_mean_the_servers_live_model(models: ModelManager) -> None:
    """gpt-4o-transcribe and whisper-1 leave the choice to LIVE_MODEL."""
    for name in ("gpt-4o-transcribe", "whisper-1"):
        event = {
            "type": "session.update",
            "session": {
                "type": "transcription",
                "audio": {"input": {"transcription": {"model": name}}},
            },
        }
        assert updated_config(event, LiveConfig(), models, OPENAI_LIVE_MODELS).model is None


def test_beta_transcription_session_update_is_understood(models: ModelManager) -> None:
    """The beta alias with flat fields and turn_detection null means manual commits."""
    event = {
        "type": "transcription_session.update",
        "session": {
            "input_audio_format": "pcm16",
            "input_audio_transcription": {"model": "whisper-1", "language": "en"},
            "turn_detection": None,
        },
    }
    config = updated_config(event, LiveConfig(), models, OPENAI_LIVE_MODELS)
    assert config.language == "en"
    assert config.turn_detection is None


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({"type": "realtime"}, "session.type"),
        (
            {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcmu"}}}},
            "session.audio.input.format.type",
        ),
        (
            {"type": "transcription", "audio": {"input": {"transcription": {"model": "nope"}}}},
            "transcription.model",
        ),
        (
            {"type": "transcription", "audio": {"input": {"turn_detection": {"type": "x"}}}},
            "turn_detection.type",
        ),
    ],
)
def test_what_the_server_cannot_do_is_refused_naming_the_field(
    models: ModelManager, session: dict[str, object], param: str
) -> None:
    """Conversation sessions, other formats, unknown models and VAD kinds are refused."""
    with pytest.raises(ProtocolError) as refused:
        updated_config({"type": "session.update", "session": session}, LiveConfig(), models, ())
    assert refused.value.param == param


def test_session_events_describe_the_session_in_the_ga_or_beta_shape() -> None:
    """session.created carries type transcription and audio.input; the beta one flat fields."""
    ga = session_event("created", "sess_1", LiveConfig(language="en"), "tiny.en", beta=False)
    assert ga["type"] == "session.created"
    assert ga["session"]["audio"]["input"]["transcription"]["model"] == "tiny.en"
    beta = session_event("updated", "sess_1", LiveConfig(turn_detection=None), "base", beta=True)
    assert beta["type"] == "transcription_session.updated"
    assert beta["session"]["turn_detection"] is None


def test_a_delta_is_followed_by_its_word_timings_and_a_completed_has_duration_usage() -> None:
    """Deltas carry text only; timings and the tail go in an x. event."""
    delta, extra = render(Delta("item_1", " ask not", [Word(1.0, 1.25, " ask", 0.9)], "what"))
    assert delta["type"] == "conversation.item.input_audio_transcription.delta"
    assert delta["delta"] == " ask not"
    assert extra["type"].startswith("x.")
    assert extra["words"] == [{"word": " ask", "start_ms": 1000, "end_ms": 1250}]
    (completed,) = render(Completed("item_1", "ask not", 1.5))
    assert completed["usage"] == {"type": "duration", "seconds": 1.5}


def test_a_pending_and_a_dropped_turn_are_the_servers_own_events() -> None:
    """Turns not announced yet are told in x. events, which OpenAI clients pass by."""
    (pending,) = render(TurnPending("item_1", 300))
    assert pending["type"] == "x.whisper_api.turn.pending"
    assert (pending["item_id"], pending["audio_start_ms"]) == ("item_1", 300)
    (dropped,) = render(TurnDropped("item_1"))
    assert (dropped["type"], dropped["item_id"]) == ("x.whisper_api.turn.dropped", "item_1")


def test_error_events_have_openais_shape() -> None:
    """type error, with the error's type, code, message, param and the client's event id."""
    event = error_event("bad", code="invalid_value", param="audio", client_event="evt_1")
    assert event["error"] == {
        "type": "invalid_request_error",
        "code": "invalid_value",
        "message": "bad",
        "param": "audio",
        "event_id": "evt_1",
    }


def _noise_update(value: object, *, beta: bool = False) -> dict[str, object]:
    if beta:
        return {
            "type": "transcription_session.update",
            "session": {"input_audio_noise_reduction": value},
        }
    return {
        "type": "session.update",
        "session": {"type": "transcription", "audio": {"input": {"noise_reduction": value}}},
    }


def test_noise_reduction_is_chosen_reported_and_switched_off(models: ModelManager) -> None:
    """near_field/far_field (GA or beta field) are applied and echoed; null turns it off."""
    far = updated_config(_noise_update({"type": "far_field"}), LiveConfig(), models, ())
    assert far.noise_reduction == "far_field"
    shown = session_event("updated", "sess_1", far, "tiny.en", beta=False)
    assert shown["session"]["audio"]["input"]["noise_reduction"] == {"type": "far_field"}
    near = updated_config(_noise_update({"type": "near_field"}, beta=True), far, models, ())
    assert near.noise_reduction == "near_field"
    beta_shown = session_event("updated", "sess_1", near, "tiny.en", beta=True)
    assert beta_shown["session"]["input_audio_noise_reduction"] == {"type": "near_field"}
    assert updated_config(_noise_update(None), near, models, ()).noise_reduction is None


def test_an_unknown_noise_reduction_is_a_protocol_error(models: ModelManager) -> None:
    """Only OpenAI's two microphone kinds are accepted."""
    with pytest.raises(ProtocolError) as refused:
        updated_config(_noise_update({"type": "studio"}), LiveConfig(), models, ())
    assert refused.value.param == "noise_reduction.type"
