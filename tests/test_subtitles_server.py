"""Shaped subtitles on the real server (bundled base): issue 26's done-when for /asr, cues on
the words' timing though the client asked for no words, and no words leaking elsewhere."""

from __future__ import annotations

import io
import wave
from typing import Any

import httpx
import numpy as np
import pytest
import srt

from app.transcription.audio import decode_audio
from tests.conftest import shared_clip
from tests.server_process import Server, server_wait_final

pytestmark = pytest.mark.real_model

JFK = "en_jfk.flac"
LONG = "en_longform_tedlium_120s.flac"  # CC BY-NC-ND: read from ../shared/audio, never copied
MAX_LINES = 2
MAX_LINE_CHARS = 42
MAX_CUE_S = 7.0


@pytest.fixture(scope="module")
def live_server_env() -> dict[str, str]:
    """One real server (bundled `base` on the CPU), subtitles shaped by default."""
    return {"CPU_FALLBACK_MODEL": "base"}


def wav(seconds: float | None, clip: str) -> bytes:
    """The first `seconds` of a shared clip (all of it for None) as 16 kHz mono WAV."""
    samples = decode_audio(shared_clip(clip).read_bytes())
    if seconds is not None:
        samples = samples[: int(seconds * 16000)]
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def asr(server: Server, audio: bytes, **params: str) -> httpx.Response:
    """One /asr call, as Bazarr makes it, answered 200."""
    response = httpx.post(
        server.url + "/asr",
        params=params,
        files={"audio_file": ("audio.wav", audio)},
        timeout=300,
    )
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize("seconds", [60.0, None], ids=["first minute", "whole 120 s"])
def test_asr_srt_keeps_the_norms_with_the_words_of_txt(
    live_server: Server, seconds: float | None
) -> None:
    """Every cue of /asr?output=srt: at most 2 lines of 42 characters and 7 s; words = txt's."""
    audio = wav(seconds, LONG)
    cues = list(srt.parse(asr(live_server, audio, output="srt").text))
    text = asr(live_server, audio, output="txt").text
    assert len(text.split()) > 100  # the speech is all there
    for cue in cues:
        lines = cue.content.split("\n")
        assert 1 <= len(lines) <= MAX_LINES, cue
        assert all(len(line) <= MAX_LINE_CHARS for line in lines), cue
        assert (cue.end - cue.start).total_seconds() <= MAX_CUE_S, cue
    shown = " ".join(cue.content.replace("\n", " ") for cue in cues)
    assert shown.split() == text.split()


def assert_cues_follow(cues: list[srt.Subtitle], words: list[dict[str, Any]]) -> None:
    """Each cue starts at its first word's start (or where the cue before ended) and lasts
    at least until its last word's end; the cues hold every word once, in order."""
    first = 0
    previous_end = 0.0
    for cue in cues:
        count = len(cue.content.split())
        mine = words[first : first + count]
        assert " ".join(w["word"].strip() for w in mine) == " ".join(cue.content.split())
        start, end = cue.start.total_seconds(), cue.end.total_seconds()
        assert start == pytest.approx(max(mine[0]["start"], previous_end), abs=0.002)
        assert end >= mine[-1]["end"] - 0.002
        first, previous_end = first + count, end
    assert first == len(words)


def test_short_audio_cues_follow_the_words_though_none_were_asked(live_server: Server) -> None:
    """jfk's shaped cues (/asr and the task API) sit on the words as `word_timestamps=true`
    times them; the task's json and verbose_json stay wordless, its text unchanged."""
    audio = wav(None, JFK)
    asked: dict[str, Any] = asr(live_server, audio, output="json", word_timestamps="true").json()
    words = [word for segment in asked["segments"] for word in segment["words"]]
    from_asr = list(srt.parse(asr(live_server, audio, output="srt").text))
    assert len(from_asr) >= 2  # 11 s of speech do not fit one readable cue
    assert_cues_follow(from_asr, words)

    task = httpx.post(
        live_server.url + "/api/v1/transcribe", files={"file": ("jfk.wav", audio)}, timeout=60
    )
    assert task.status_code in (200, 201, 202), task.text
    task_id = task.json()["task_id"]
    server_wait_final(live_server.url, task_id)

    def result(fmt: str) -> httpx.Response:
        response = httpx.get(
            f"{live_server.url}/api/v1/tasks/{task_id}/result", params={"format": fmt}, timeout=30
        )
        assert response.status_code == 200, response.text
        return response

    assert_cues_follow(list(srt.parse(result("srt").text)), words)
    plain: dict[str, Any] = result("json").json()
    assert plain["text"] == asked["text"]
    assert all(not segment.get("words") for segment in plain["segments"])
    verbose: dict[str, Any] = result("verbose_json").json()
    assert not verbose.get("words")
    assert all("words" not in segment for segment in verbose["segments"])


def test_openai_surface_keeps_segment_cues_and_shows_no_words(live_server: Server) -> None:
    """OpenAI's routes: verbose_json without word granularity has no words; srt is one cue
    per segment, as at OpenAI."""
    audio = wav(None, JFK)

    def openai(response_format: str) -> httpx.Response:
        response = httpx.post(
            live_server.url + "/v1/audio/transcriptions",
            data={"model": "whisper-1", "response_format": response_format, "language": "en"},
            files={"file": ("audio.wav", audio)},
            timeout=120,
        )
        assert response.status_code == 200, response.text
        return response

    verbose: dict[str, Any] = openai("verbose_json").json()
    assert "words" not in verbose
    assert all("words" not in segment for segment in verbose["segments"])
    cues = list(srt.parse(openai("srt").text))
    assert [(c.start.total_seconds(), c.end.total_seconds()) for c in cues] == [
        (pytest.approx(s["start"], abs=0.002), pytest.approx(s["end"], abs=0.002))
        for s in verbose["segments"]
    ]
