"""/v1/realtime in process with a fake model: commits, errors, limits and refusals."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient
from litestar.testing.websocket_test_session import WebSocketTestSession

from app.asgi import create_app
from app.clock import Clock
from app.composition import build_service
from app.observability.metrics import LiveMetrics
from app.service import TranscriptionService
from app.service.live import LiveService
from app.transcription.live.audio import VAD_FRAME_SAMPLES
from tests.asgi_helpers import local_store
from tests.conftest import FakeTranscriber, fake_manager, make_settings
from tests.transcription.rig import FakeClock

KEY = "route-test-key-0123456789"
ROUTE = "/v1/realtime?intent=transcription"


def quiet_scorer() -> Any:
    """A voice detector that never hears speech start, yet takes every frame for a voice.

    0.4: below server VAD's threshold (0.5, no turn opens by itself), above the bar of
    the voiced-audio map (0.35), so the fake model's words are not taken for made up.
    """
    return lambda samples: [0.4] * (len(samples) // VAD_FRAME_SAMPLES)


def client_and_service(
    clock: Clock | None = None, **overrides: Any
) -> tuple[TestClient[Any], TranscriptionService, LiveService]:
    """An app whose live sessions use a fake model that always says 'hello world'."""
    settings = make_settings(**{"max_live_sessions": 1, **overrides})
    transcriber = FakeTranscriber(text="hello world")
    service = build_service(settings, fake_manager(settings, transcriber), clock=clock)
    live = LiveService(
        settings,
        LiveMetrics(service.metrics.registry),
        models=fake_manager(settings, transcriber),
        scorer_factory=quiet_scorer,
    )
    return TestClient(create_app(settings, service=service, live=live)), service, live


def client_for(clock: Clock | None = None, **overrides: Any) -> TestClient[Any]:
    """The app of `client_and_service`."""
    return client_and_service(clock, **overrides)[0]


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


def advance(test_client: TestClient[Any], clock: FakeClock, seconds: float) -> None:
    """Move the app's fake clock on the app's own event loop."""
    assert test_client.blocking_portal is not None
    test_client.blocking_portal.call(clock.advance, seconds)


def test_an_idle_session_is_ended_with_an_error_event() -> None:
    """No client event for LIVE_IDLE_TIMEOUT_S of the clock: error idle_timeout, then the close."""
    clock = FakeClock(autoadvance=False)
    test_client = client_for(clock, live_idle_timeout_s=60)
    with test_client, test_client.websocket_connect(ROUTE) as socket:
        socket.receive_json()
        socket.send_json(manual())
        assert socket.receive_json()["type"] == "session.updated"
        advance(test_client, clock, 59)
        socket.send_json(manual())  # an event: the idle period starts again
        assert socket.receive_json()["type"] == "session.updated"
        advance(test_client, clock, 59)
        advance(test_client, clock, 2)
        assert next_of(socket, "error")["error"]["code"] == "idle_timeout"
        with pytest.raises(WebSocketDisconnect):
            socket.receive_json()


def test_audio_never_committed_does_not_keep_a_silent_client_alive() -> None:
    """An open turn is no transcript anybody waits for: the idle timeout still ends the session."""
    clock = FakeClock(autoadvance=False)
    test_client = client_for(clock, live_idle_timeout_s=60)
    with test_client, test_client.websocket_connect(ROUTE) as socket:
        socket.receive_json()
        socket.send_json(manual())
        next_of(socket, "session.updated")
        audio = base64.b64encode(b"\0\0" * 24000).decode()
        socket.send_json({"type": "input_audio_buffer.append", "audio": audio})
        socket.send_json(manual())  # answered after the append: the turn is open by now
        next_of(socket, "session.updated")
        advance(test_client, clock, 61)
        assert next_of(socket, "error")["error"]["code"] == "idle_timeout"


def test_the_live_model_loads_with_the_first_session_not_at_start() -> None:
    """An idle server holds no live model, even with LOAD_MODEL_ON_STARTUP; a session loads it."""
    test_client, _, live = client_and_service(load_model_on_startup=True)
    with test_client:
        assert live.models.loaded_models == []
        with test_client.websocket_connect(ROUTE) as socket:
            socket.receive_json()
            talk_and_commit(socket)
        assert live.models.loaded_models == [live.model]


def test_a_session_ends_at_the_maximum_length() -> None:
    """Past LIVE_MAX_SESSION_S of the clock the session is told session_expired and closed."""
    clock = FakeClock(autoadvance=False)
    test_client = client_for(clock, live_max_session_s=100, live_idle_timeout_s=60)
    with test_client, test_client.websocket_connect(ROUTE) as socket:
        socket.receive_json()
        for _ in range(2):  # events keep the session from idling; the length still counts
            advance(test_client, clock, 45)
            socket.send_json(manual())
            assert socket.receive_json()["type"] == "session.updated"
        advance(test_client, clock, 11)
        assert next_of(socket, "error")["error"]["code"] == "session_expired"
        with pytest.raises(WebSocketDisconnect):
            socket.receive_json()


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


def talk_and_commit(socket: WebSocketTestSession) -> dict[str, Any]:
    """One manual turn of a second of audio (after a clear: no turn is cut just before it,
    whose end it would hear and leave out); its completed event."""
    socket.send_json(manual())
    next_of(socket, "session.updated")
    socket.send_json({"type": "input_audio_buffer.clear"})
    next_of(socket, "input_audio_buffer.cleared")
    audio = base64.b64encode(b"\0\0" * 24000).decode()
    socket.send_json({"type": "input_audio_buffer.append", "audio": audio})
    socket.send_json({"type": "input_audio_buffer.commit"})
    return next_of(socket, "conversation.item.input_audio_transcription.completed")


def test_a_kept_session_becomes_a_finished_task_of_its_key() -> None:
    """x.whisper_api.session.keep stores the turns as a task only the session's key can read."""
    other = "another-key-0123456789ab"
    with client_for(api_keys=(KEY, other)) as test_client:
        protocols = ["realtime", f"openai-insecure-api-key.{KEY}"]
        with test_client.websocket_connect(ROUTE, subprotocols=protocols) as socket:
            socket.receive_json()
            talk_and_commit(socket)
            talk_and_commit(socket)
            socket.send_json({"type": "x.whisper_api.session.keep"})
            created = next_of(socket, "x.whisper_api.task.created")
        assert created["turns"] == 2
        mine = {"Authorization": f"Bearer {KEY}"}
        task = test_client.get(created["url"], headers=mine).json()
        assert task["status"] == "finished"
        srt = test_client.get(f"{created['url']}/result?format=srt", headers=mine)
        assert srt.status_code == 200
        assert srt.text.count("hello world") == 2
        theirs = {"Authorization": f"Bearer {other}"}
        assert test_client.get(created["url"], headers=theirs).status_code == 404


def test_a_session_is_not_kept_unless_asked() -> None:
    """Completed turns leave no task behind when the client does not ask to keep them."""
    test_client, service, _ = client_and_service()
    with test_client:
        with test_client.websocket_connect(ROUTE) as socket:
            socket.receive_json()
            talk_and_commit(socket)
        assert len(local_store(service)) == 0


def test_keeping_before_any_turn_is_an_error_event(client: TestClient[Any]) -> None:
    """Nothing transcribed yet: error nothing_to_keep, and the session goes on."""
    with client.websocket_connect(ROUTE) as socket:
        socket.receive_json()
        socket.send_json({"type": "x.whisper_api.session.keep", "event_id": "evt_1"})
        error = next_of(socket, "error")["error"]
        assert (error["code"], error["event_id"]) == ("nothing_to_keep", "evt_1")
        assert talk_and_commit(socket)["transcript"] == "hello world"


def test_rate_limit_counts_live_sessions_with_the_clients_http_requests() -> None:
    """RATE_LIMIT covers the websocket too: one budget per client for requests and sessions."""
    with client_for(rate_limit="3/minute", max_live_sessions=5) as test_client:
        assert test_client.get("/api/v1/decoder_status").status_code == 200
        for _ in range(2):
            with test_client.websocket_connect(ROUTE) as socket:
                assert socket.receive_json()["type"] == "session.created"
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            test_client.websocket_connect(ROUTE) as socket,
        ):
            socket.receive_json()
        assert refused.value.code == 1008
        assert test_client.get("/api/v1/decoder_status").status_code == 429


def test_invalid_events_do_not_keep_a_session_alive() -> None:
    """Only valid events (or audio) restart the idle period: garbage every 50 s still idles out."""
    clock = FakeClock(autoadvance=False)
    test_client = client_for(clock, live_idle_timeout_s=60)
    with test_client, test_client.websocket_connect(ROUTE) as socket:
        socket.receive_json()
        advance(test_client, clock, 50)
        socket.send_json({"type": "no.such.event"})
        assert next_of(socket, "error")["error"]["code"] == "unknown_event"
        socket.send_json({"type": "input_audio_buffer.append", "audio": ""})  # no audio
        socket.send_text("[[[")
        assert next_of(socket, "error")["error"]["code"] == "invalid_json"
        advance(test_client, clock, 11)
        assert next_of(socket, "error")["error"]["code"] == "idle_timeout"


def test_deeply_nested_or_oddly_shaped_events_get_error_events(client: TestClient[Any]) -> None:
    """JSON nested past any sane depth, and fields of the wrong shape, are answered, not raised."""
    with client.websocket_connect(ROUTE) as socket:
        socket.receive_json()
        socket.send_text("[" * 100_000 + "]" * 100_000)
        assert next_of(socket, "error")["error"]["code"] == "invalid_json"
        for odd in ({"prompt": 5}, {"language": ["en"]}, {"model": {"name": "x"}}):
            update = manual()
            update["session"]["audio"]["input"]["transcription"] = odd
            socket.send_json(update)
            assert next_of(socket, "error")["error"]["code"] in ("invalid_value", "invalid_request")
        socket.send_bytes(b"\xff\xfe binary")
        assert next_of(socket, "error")["type"] == "error"
        assert talk_and_commit(socket)["transcript"] == "hello world"


def test_keeping_again_without_a_new_turn_answers_with_the_same_task() -> None:
    """One kept task per session (or per new completed turn), however often keep is sent."""
    test_client, service, _ = client_and_service()
    with test_client, test_client.websocket_connect(ROUTE) as socket:
        socket.receive_json()
        talk_and_commit(socket)
        ids = set()
        for _ in range(5):
            socket.send_json({"type": "x.whisper_api.session.keep"})
            ids.add(next_of(socket, "x.whisper_api.task.created")["task_id"])
        assert len(ids) == 1
        talk_and_commit(socket)
        socket.send_json({"type": "x.whisper_api.session.keep"})
        again = next_of(socket, "x.whisper_api.task.created")
        assert again["task_id"] not in ids and again["turns"] == 2
        assert len(local_store(service)) == 2
        metrics = service.metrics.render().decode()
        assert (
            'whisper_api_jobs_total{status="finished",surface="live",task_type="transcribe"} 2.0'
            in metrics
        )


def test_a_session_past_max_audio_duration_is_ended_with_an_error_event() -> None:
    """MAX_AUDIO_DURATION_S bounds a session's audio as it bounds an upload's."""
    test_client = client_for(max_audio_duration_s=3)
    with test_client, test_client.websocket_connect(ROUTE) as socket:
        socket.receive_json()
        socket.send_json(manual())
        next_of(socket, "session.updated")
        audio = base64.b64encode(b"\0\0" * 24000).decode()
        for _ in range(5):  # the resampler holds a few samples back: 4 s may not reach 3 s
            socket.send_json({"type": "input_audio_buffer.append", "audio": audio})
        assert next_of(socket, "error")["error"]["code"] == "session_audio_limit"
        with pytest.raises(WebSocketDisconnect):
            for _ in range(20):  # turns already committed may still be reported
                socket.receive_json()
