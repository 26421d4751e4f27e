"""/v1/realtime in process with a fake model: commits, errors, limits and refusals."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient
from litestar.testing.websocket_test_session import WebSocketTestSession

from app.asgi import build_service, create_app
from app.live_service import LiveService
from app.metrics import LiveMetrics
from app.transcription.live_audio import VAD_FRAME_SAMPLES
from tests.conftest import FakeTranscriber, fake_manager, make_settings

KEY = "route-test-key-0123456789"
ROUTE = "/v1/realtime?intent=transcription"


def quiet_scorer() -> Any:
    """A voice detector that never hears speech."""
    return lambda samples: [0.0] * (len(samples) // VAD_FRAME_SAMPLES)


def client_for(**overrides: Any) -> TestClient[Any]:
    """An app whose live sessions use a fake model that always says 'hello world'."""
    settings = make_settings(**{"max_live_sessions": 1, **overrides})
    transcriber = FakeTranscriber(text="hello world")
    service = build_service(settings, fake_manager(settings, transcriber))
    live = LiveService(
        settings,
        LiveMetrics(service.metrics.registry),
        models=fake_manager(settings, transcriber),
        scorer_factory=quiet_scorer,
    )
    return TestClient(create_app(settings, service=service, live=live))


@pytest.fixture
def client() -> Iterator[TestClient[Any]]:
    """The app with default limits."""
    with client_for() as test_client:
        yield test_client


def manual(language: str = "en") -> dict[str, Any]:
    """A session.update switching turn detection off."""
    return {
        "type": "session.update",
        "session": {
            "type": "transcription",
            "audio": {"input": {"transcription": {"language": language}, "turn_detection": None}},
        },
    }


def next_of(socket: WebSocketTestSession, kind: str, limit: int = 20) -> dict[str, Any]:
    """The next event of `kind` (others are skipped)."""
    for _ in range(limit):
        event: dict[str, Any] = socket.receive_json()
        if event["type"] == kind:
            return event
    raise AssertionError(f"no {kind} event")


def test_a_manual_commit_gives_committed_deltas_and_one_completed(
    client: TestClient[Any],
) -> None:
    """Append, commit: committed, then the transcript in deltas and a completed."""
    with client.websocket_connect(ROUTE) as socket:
        assert socket.receive_json()["type"] == "session.created"
        socket.send_json(manual())
        assert socket.receive_json()["type"] == "session.updated"
        audio = base64.b64encode(b"\0\0" * 24000).decode()
        socket.send_json({"type": "input_audio_buffer.append", "audio": audio})
        socket.send_json({"type": "input_audio_buffer.commit"})
        committed = next_of(socket, "input_audio_buffer.committed")
        completed = next_of(socket, "conversation.item.input_audio_transcription.completed")
        assert completed["item_id"] == committed["item_id"]
        assert completed["transcript"] == "hello world"
        assert completed["usage"]["type"] == "duration"


def test_bad_events_get_error_events_and_the_session_goes_on(client: TestClient[Any]) -> None:
    """Unknown types, bad base64 and non-JSON are answered with error events."""
    with client.websocket_connect(ROUTE) as socket:
        socket.receive_json()
        socket.send_json({"type": "response.create", "event_id": "evt_7"})
        error = next_of(socket, "error")["error"]
        assert (error["code"], error["event_id"]) == ("unknown_event", "evt_7")
        socket.send_json({"type": "input_audio_buffer.append", "audio": "***"})
        assert next_of(socket, "error")["error"]["param"] == "audio"
        socket.send_text("not json")
        assert next_of(socket, "error")["error"]["code"] == "invalid_json"
        socket.send_json(manual())
        assert socket.receive_json()["type"] == "session.updated"


def test_an_idle_session_is_ended_with_an_error_event() -> None:
    """No client event within LIVE_IDLE_TIMEOUT_S: error idle_timeout, then the close."""
    test_client = client_for(live_idle_timeout_s=0.2)
    with test_client, test_client.websocket_connect(ROUTE) as socket:
        socket.receive_json()
        assert next_of(socket, "error")["error"]["code"] == "idle_timeout"
        with pytest.raises(WebSocketDisconnect):
            socket.receive_json()


def test_a_session_ends_at_the_maximum_length() -> None:
    """Past LIVE_MAX_SESSION_S the session is told session_expired and closed."""
    test_client = client_for(live_max_session_s=0.2)
    with test_client, test_client.websocket_connect(ROUTE) as socket:
        socket.receive_json()
        assert next_of(socket, "error")["error"]["code"] == "session_expired"


def test_without_a_key_the_upgrade_is_refused() -> None:
    """With API_KEYS, a connection without a key is closed before any event (1008)."""
    with client_for(api_keys=(KEY,)) as test_client:
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            test_client.websocket_connect(ROUTE) as socket,
        ):
            socket.receive_json()
        assert refused.value.code == 1008


def test_the_key_may_come_as_a_subprotocol_and_realtime_is_chosen() -> None:
    """Browsers send the key as openai-insecure-api-key.<key>; the answer picks 'realtime'."""
    with client_for(api_keys=(KEY,)) as test_client:
        protocols = ["realtime", f"openai-insecure-api-key.{KEY}"]
        with test_client.websocket_connect(ROUTE, subprotocols=protocols) as socket:
            assert socket.receive_json()["type"] == "session.created"
            assert socket.accepted_subprotocol == "realtime"


def test_live_off_refuses_every_session() -> None:
    """MAX_LIVE_SESSIONS=0 switches the route off."""
    test_client = client_for(max_live_sessions=0)
    with (
        test_client,
        pytest.raises(WebSocketDisconnect),
        test_client.websocket_connect(ROUTE) as socket,
    ):
        socket.receive_json()
