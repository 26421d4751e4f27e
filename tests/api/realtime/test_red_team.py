"""The red team's attacks on /v1/realtime (issue 27), replayed against a real server process.

One server for the module (no API keys, one live session at a time, privacy mode):
each test plays one row of the report and checks the bound that answers it (memory,
the next client served, one kept task, a foreign page refused, clean logs). The
bounds are generous: they tell a bounded server from an unbounded one on a busy
shared CPU, they do not measure speed (`whisper-api bench --only live` does).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.conftest import shared_clip
from tests.live_stream import clip_pcm24
from tests.server_process import Server, served, start_server, wait_until

pytestmark = pytest.mark.real_model

KEY = "red-team-key-0123456789ab"
MANUAL = {
    "type": "session.update",
    "session": {
        "type": "transcription",
        "audio": {"input": {"transcription": {"language": "en"}, "turn_detection": None}},
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The real server: live on, one session, a short idle timeout, privacy mode (default)."""
    with served(
        tmp_path_factory.mktemp("red-team"),
        ready_timeout_s=240,
        MAX_LIVE_SESSIONS="1",
        LIVE_IDLE_TIMEOUT_S="4",
    ) as running:
        yield running


def ws_url(server: Server) -> str:
    """The live route's websocket URL."""
    return server.url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"


def open_session(server: Server, **options: Any) -> ClientConnection:
    """A connected session (its session.created read), retried while the slot is still taken."""

    def attempt() -> ClientConnection | None:
        try:
            # Entered at once: the caller's `with` (or close) ends it.
            socket = connect(ws_url(server), max_size=None, open_timeout=30, **options).__enter__()
        except InvalidStatus as refused:
            if refused.response.status_code == 429:
                return None
            raise
        assert event(socket)["type"] == "session.created"
        return socket

    return wait_until(attempt, timeout_s=60, interval_s=0.2, message="no live slot came free")


def event(socket: ClientConnection, timeout_s: float = 60) -> dict[str, Any]:
    """The next server event."""
    answer: dict[str, Any] = json.loads(socket.recv(timeout=timeout_s))
    return answer


def next_of(socket: ClientConnection, kind: str, timeout_s: float = 120) -> dict[str, Any]:
    """The next event of `kind`, skipping others."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = event(socket, max(0.1, deadline - time.monotonic()))
        if got["type"] == kind:
            return got


def append(socket: ClientConnection, pcm: bytes) -> None:
    """One input_audio_buffer.append."""
    audio = base64.b64encode(pcm).decode()
    socket.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))


def noise(seconds: float, seed: int = 0) -> bytes:
    """Loud white noise, 24 kHz PCM16."""
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 6000, round(seconds * 24000)).clip(-32767, 32767)).astype("<i2").tobytes()


def jfk_transcript(server: Server) -> str:
    """A fresh client's committed jfk clip: its transcript (the 'next client' of each row)."""
    with open_session(server) as socket:
        socket.send(json.dumps(MANUAL))
        next_of(socket, "session.updated")
        append(socket, clip_pcm24(shared_clip("en_jfk.flac")))
        socket.send(json.dumps({"type": "input_audio_buffer.commit"}))
        kind = "conversation.item.input_audio_transcription.completed"
        return str(next_of(socket, kind, timeout_s=120)["transcript"])


class HealthProbe:
    """Polls /healthz in a thread while an attack runs; the slowest answer, in seconds."""

    def __init__(self, server: Server) -> None:
        self.url = server.url + "/healthz"
        self.slowest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            httpx.get(self.url, timeout=30)
            self.slowest = max(self.slowest, time.monotonic() - began)
            self._stop.wait(0.1)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=35)


def test_fast_noise_with_vad_off_stays_bounded_and_the_loop_answers(server: Server) -> None:
    """Row 1: a flood of noise with turn detection off: the client is told the buffer is
    full, the server stays under 1 GiB and /healthz keeps answering."""
    chunk = noise(16.0)
    codes = []
    with HealthProbe(server) as probe, open_session(server) as socket:
        socket.send(json.dumps(MANUAL))
        next_of(socket, "session.updated")
        for _ in range(120):  # 32 minutes of audio, as fast as the connection takes it
            append(socket, chunk)
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            while "idle_timeout" not in codes:  # the session goes idle once it is done
                got = event(socket, 120)
                if got["type"] == "error":
                    codes.append(got["error"]["code"])
    assert set(codes) == {"input_audio_buffer_full", "idle_timeout"}
    refused = codes.count("input_audio_buffer_full")
    assert refused > 0
    assert server.peak_rss_mib() < 1024
    assert probe.slowest < 2.0
    assert "ask not" in jfk_transcript(server).lower()  # the next client is served


def test_a_client_that_sends_huge_appends_and_leaves_frees_the_slot_at_once(
    server: Server,
) -> None:
    """Row 2: 11 appends of 15 MiB, then gone: its passes stop, the next client is served."""
    huge = noise(15 * 1024 * 1024 * 3 / 4 / 2 / 24000 - 1, seed=1)  # base64 of ~15 MiB
    with open_session(server) as socket:
        socket.send(json.dumps(MANUAL))
        next_of(socket, "session.updated")
        # The server may end the session first (its refused appends are no activity).
        with contextlib.suppress(ConnectionClosed):
            for _ in range(11):
                append(socket, huge)
    left = time.monotonic()
    transcript = jfk_transcript(server)
    assert "ask not what your country can do for you" in transcript.lower()
    assert time.monotonic() - left < 90
    assert server.peak_rss_mib() < 1024


def test_keep_sent_without_end_stores_one_task(server: Server) -> None:
    """Row 3: keep sent again and again: one task, counted in /metrics."""
    before = kept_count(server)
    with open_session(server) as socket:
        socket.send(json.dumps(MANUAL))
        next_of(socket, "session.updated")
        append(socket, clip_pcm24(shared_clip("en_jfk.flac")))
        socket.send(json.dumps({"type": "input_audio_buffer.commit"}))
        next_of(socket, "conversation.item.input_audio_transcription.completed")
        for _ in range(300):
            socket.send(json.dumps({"type": "x.whisper_api.session.keep"}))
        ids = {next_of(socket, "x.whisper_api.task.created")["task_id"] for _ in range(300)}
    assert len(ids) == 1
    assert kept_count(server) == before + 1


def kept_count(server: Server) -> float:
    """Finished live tasks in /metrics."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    pattern = r'^whisper_api_jobs_total\{[^}]*surface="live"[^}]*\} (\S+)$'
    return sum(float(value) for value in re.findall(pattern, text, re.M))


def test_a_page_of_another_site_is_refused_before_the_upgrade(server: Server) -> None:
    """Row 4: Origin http://evil.example gets 403, no session; the server's own page passes."""
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(server), origin="http://evil.example", open_timeout=30)  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    own = server.url  # the page the server itself serves
    with open_session(server, origin=own) as socket:
        socket.send(json.dumps(MANUAL))
        assert next_of(socket, "session.updated")


def test_invalid_events_do_not_hold_the_only_slot(server: Server) -> None:
    """Row 5: garbage more often than the idle timeout: the session still ends, the slot frees."""
    socket = open_session(server)
    began = time.monotonic()
    with pytest.raises(ConnectionClosed):
        for _ in range(200):
            socket.send("not an event")
            time.sleep(0.5)
    socket.close()
    assert time.monotonic() - began < 30
    assert jfk_transcript(server)


def test_malformed_events_are_answered_and_logged_without_a_traceback(server: Server) -> None:
    """Row 7: deeply nested JSON gets an error event and the connection stays open."""
    with open_session(server) as socket:
        socket.send("[" * 200_000 + "]" * 200_000)
        assert next_of(socket, "error")["error"]["code"] == "invalid_json"
        socket.send(json.dumps(MANUAL))
        assert next_of(socket, "session.updated")
    assert "RecursionError" not in server.output
    assert "Traceback" not in server.output


def test_the_log_holds_no_client_address_query_or_audio_metadata(server: Server) -> None:
    """Row 6 (run last in the module): privacy mode leaves no address, query or duration."""
    jfk_transcript(server)
    output = server.output
    assert "websocket_request" in output
    assert re.search(r"127\.0\.0\.1:\d+", output.replace(server.url, "")) is None
    assert "intent=transcription" not in output
    assert "Processing audio with duration" not in output
    assert "Detected language" not in output


def test_sigterm_ends_a_server_with_a_pass_running_and_401_names_the_scheme(
    tmp_path: Any,
) -> None:
    """Rows 2 and 7: a 401 carries WWW-Authenticate; SIGTERM with a live pass running ends
    the server promptly (no second signal)."""
    process = start_server(tmp_path, API_KEYS=KEY, MAX_LIVE_SESSIONS="1", SHUTDOWN_GRACE_S="5")
    try:
        process.wait_ready(timeout_s=240)
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url(process), open_timeout=30)
        assert refused.value.response.status_code == 401
        assert refused.value.response.headers["www-authenticate"].startswith("Bearer")
        headers = {"Authorization": f"Bearer {KEY}"}
        socket = open_session(process, additional_headers=headers)
        socket.send(json.dumps(MANUAL))
        next_of(socket, "session.updated")
        append(socket, noise(120.0, seed=2))
        process.wait_logged(lambda r: r.get("event") == "model_loaded", timeout_s=120)
        time.sleep(1.0)  # a pass is under way
        began = time.monotonic()
        process.process.send_signal(signal.SIGTERM)
        process.process.wait(timeout=60)
        assert time.monotonic() - began < 30
        socket.close()
    finally:
        process.stop()
