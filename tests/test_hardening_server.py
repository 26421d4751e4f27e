"""The hardening review (issue 15) replayed against a real server process, with figures.

Rows 4, 5 and 7 have their own tests (tests/test_uploads_server.py, tests/test_shutdown.py,
tests/test_readonly_server.py); the bad-input corpus (tests/test_bad_inputs.py) replays
rows 2, 3 and 8 on every upload route.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from app.api.headers import CONTENT_SECURITY_POLICY
from app.transcription.audio import decode_audio
from tests.attack_clients import raw_get
from tests.bad_inputs import form_with_charset, silent_flac_without_length, tone, video_bomb, wav
from tests.conftest import shared_clip
from tests.server_process import Server, served, server_wait_final

pytestmark = pytest.mark.real_model

SPEECH = "en_ljspeech_LJ001-0002.wav"  # 1.9 s


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A CPU server without MAX_MODEL, capped by CPU_FALLBACK_MODEL=base."""
    shared_clip(SPEECH)
    with served(
        tmp_path_factory.mktemp("hardening"),
        ready_timeout_s=120,
        CPU_FALLBACK_MODEL="base",
        # Row 3 sends eight bodies at once from 127.0.0.1: one client's share is not under test.
        MAX_UPLOADS_IN_FLIGHT_PER_CLIENT="16",
    ) as running:
        yield running
    assert "Traceback" not in running.output


def _timed(call: object) -> tuple[httpx.Response, float]:
    began = time.monotonic()
    response = call()  # type: ignore[operator]
    return response, time.monotonic() - began


def test_row_1_huge_query_strings_and_paths_do_not_freeze_the_server(server: Server) -> None:
    """100 KB of adversarial query string or path: answered at once, the server keeps answering."""
    junk = "a@" * 50_000  # the shape that made the old e-mail pattern quadratic
    targets = ["/api/v1/status?task_id=" + junk, "/api/v1/tasks/" + junk, "/" + "x" * 100_000]
    sent = [threading.Event() for _ in targets]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        slow = [
            pool.submit(raw_get, server.url, target, sent=event)
            for target, event in zip(targets, sent, strict=True)
        ]
        for event in sent:  # all three are on their way before /healthz is asked
            assert event.wait(10), "a request was never sent"
        health, health_s = _timed(lambda: httpx.get(server.url + "/healthz", timeout=10))
        answers = [future.result() for future in slow]
    print(
        f"\nrow 1: 100 KB requests answered {[status for status, _ in answers]} in "
        f"{[round(s, 2) for _, s in answers]} s; /healthz meanwhile in {health_s:.2f} s"
    )
    assert health.status_code == 200 and health_s < 2.0
    assert all(status is not None and status < 500 for status, _ in answers)
    assert all(seconds < 3.0 for _, seconds in answers)


def test_row_2_video_streams_are_never_decoded(server: Server) -> None:
    """1.9 s of speech beside seven 16000×16000 PNG streams: a 1.9 s job, peak RSS flat."""
    speech = decode_audio(shared_clip(SPEECH).read_bytes())
    bomb = video_bomb(streams=7, side=16000, audio=speech)
    before = server.peak_rss_mib()
    response, upload_s = _timed(
        lambda: httpx.post(
            server.url + "/api/v1/transcribe",
            files={"file": ("bomb.mov", bomb)},
            params={"language": "en"},
            timeout=120,
        )
    )
    assert response.status_code == 200, response.text
    body = server_wait_final(server.url, response.json()["task_id"])
    growth = server.peak_rss_mib() - before
    print(
        f"\nrow 2: {len(bomb) / 1e6:.1f} MB file accepted in {upload_s:.2f} s as a "
        f"{body['audio_duration']} s job; peak RSS grew {growth:.0f} MiB (was 5.6 GB)"
    )
    assert body["status"] == "finished" and body["transcript"].strip()
    assert body["audio_duration"] == pytest.approx(1.9, abs=0.1)
    assert growth < 300


def test_row_3_hours_of_silence_without_a_length_are_refused_quickly(server: Server) -> None:
    """Eight 72 KB FLACs of 5 h silence at once: each 413 within a second or two, memory flat."""
    data = silent_flac_without_length(5 * 3600)
    before = server.peak_rss_mib()

    def send() -> tuple[httpx.Response, float]:
        return _timed(
            lambda: httpx.post(
                server.url + "/api/v1/transcribe", files={"file": ("h.flac", data)}, timeout=60
            )
        )

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: send(), range(8)))
    growth = server.peak_rss_mib() - before
    print(
        f"\nrow 3: {len(data) / 1000:.0f} KB × 8 answered "
        f"{sorted({r.status_code for r, _ in answers})} in at most "
        f"{max(s for _, s in answers):.2f} s; peak RSS grew {growth:.0f} MiB"
    )
    assert all(response.status_code == 413 for response, _ in answers)
    assert "at most 14400 s" in answers[0][0].json()["detail"]
    assert max(seconds for _, seconds in answers) < 5.0
    assert growth < 200


@pytest.mark.parametrize("model", ["large-v3", "turbo", "distil-large-v3"])
def test_row_6_cpu_fallback_model_caps_requests(server: Server, model: str) -> None:
    """With MAX_MODEL unset on a CPU server, a bigger model is a 400 naming the cap."""
    clip = wav(tone(1.0))
    task = httpx.post(
        server.url + "/api/v1/transcribe", files={"file": ("a.wav", clip)}, params={"model": model}
    )
    openai = httpx.post(
        server.url + "/v1/audio/transcriptions",
        files={"file": ("a.wav", clip)},
        data={"model": model},
    )
    assert task.status_code == 400 and "CPU_FALLBACK_MODEL" in task.json()["detail"]
    assert openai.status_code == 400 and "CPU_FALLBACK_MODEL" in openai.json()["error"]["message"]
    assert "download" not in server.output.lower()


@pytest.mark.parametrize(
    ("path", "query"),
    [("/api/v1/transcribe", {}), ("/v1/audio/transcriptions", {}), ("/asr", {"output": "json"})],
)
@pytest.mark.parametrize("charset", ["x-bogus", "hex", "idna"])
def test_row_8_bad_charsets_are_a_400_on_every_surface(
    server: Server, path: str, query: dict[str, str], charset: str
) -> None:
    """A text part in an unknown or binary charset: 400 on every upload route, no traceback."""
    response = httpx.post(
        server.url + path,
        content=form_with_charset(charset, wav(tone(0.5))),
        params=query,
        headers={"Content-Type": "multipart/form-data; boundary=corpus-boundary-7e3a"},
    )
    assert response.status_code == 400, response.text
    assert "charset" in response.text


def test_rows_9_to_11_paths_caching_framing_and_head(server: Server) -> None:
    """Long path segment 404; no-store on transcripts and state; CSP on the page; HEAD health."""
    long_path = httpx.get(server.url + "/" + "a" * 300)
    assert long_path.status_code == 404 and "no such page" in long_path.json()["detail"]
    clip = shared_clip(SPEECH).read_bytes()
    posted = httpx.post(
        server.url + "/api/v1/transcribe",
        files={"file": ("a.wav", clip)},
        params={"language": "en"},
        timeout=60,
    )
    task_id = posted.json()["task_id"]
    server_wait_final(server.url, task_id)
    carrying = [
        posted,
        httpx.get(f"{server.url}/api/v1/tasks/{task_id}"),
        httpx.get(f"{server.url}/api/v1/tasks/{task_id}/result", params={"format": "txt"}),
        httpx.get(f"{server.url}/api/v1/srt", params={"task_id": task_id}),
        httpx.post(
            server.url + "/v1/audio/transcriptions",
            files={"file": ("a.wav", clip)},
            data={"model": "whisper-1", "language": "en"},
            timeout=60,
        ),
        httpx.post(
            server.url + "/asr",
            files={"audio_file": ("a.wav", clip)},
            params={"language": "en"},
            timeout=60,
        ),
    ]
    assert [r.headers.get("cache-control") for r in carrying] == ["no-store"] * len(carrying)
    page = httpx.get(server.url + "/")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert httpx.head(server.url + "/healthz").status_code == 200
    assert httpx.head(server.url + "/readyz").status_code == 200
