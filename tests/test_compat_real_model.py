"""The real server with the real bundled model, driven by the clients people already use:
the official `openai` SDK, Bazarr/subgen-style /asr and /detect-language calls, and our CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
import srt
import webvtt

from app.bench.runner import word_error_rate
from app.transcription.audio import decode_audio
from tests.conftest import REPO_ROOT, reference_text, shared_clip
from tests.server_process import Server, server_decoder_status

pytestmark = pytest.mark.real_model

JFK = "en_jfk.flac"
JFK_SECONDS = 11.0
LONG = "en_longform_tedlium_120s.flac"
GERMAN = "de_picovoice_test_de.wav"


@pytest.fixture(scope="module")
def live_server_env() -> dict[str, str]:
    """One real server (bundled `base` on the CPU) for every test of this module."""
    return {"CPU_FALLBACK_MODEL": "base"}


def transcribe(sdk: openai.OpenAI, clip: str, **options: Any) -> Any:
    """One call of client.audio.transcriptions.create with a shared clip."""
    with shared_clip(clip).open("rb") as audio:
        return sdk.audio.transcriptions.create(model="whisper-1", file=audio, **options)


def translate(sdk: openai.OpenAI, clip: str, **options: Any) -> Any:
    """One call of client.audio.translations.create with a shared clip."""
    with shared_clip(clip).open("rb") as audio:
        return sdk.audio.translations.create(model="whisper-1", file=audio, **options)


def assert_cues_in_order(starts_ends: list[tuple[float, float]], duration: float) -> None:
    """Cue times never go backwards, never overlap and stay within the audio."""
    assert starts_ends
    previous_end = 0.0
    for start, end in starts_ends:
        assert previous_end <= start <= end <= duration + 0.001
        previous_end = end


def srt_times(text: str) -> list[tuple[float, float]]:
    """(start, end) of each cue, parsed by the independent `srt` package."""
    return [(s.start.total_seconds(), s.end.total_seconds()) for s in srt.parse(text)]


def vtt_times(text: str) -> list[tuple[float, float]]:
    """(start, end) of each cue, parsed by the independent `webvtt-py` package."""
    return [(c.start_in_seconds, c.end_in_seconds) for c in webvtt.from_string(text)]


def test_openai_sdk_transcribes_in_every_response_format(sdk: openai.OpenAI) -> None:
    """json, text, srt, verbose_json and vtt all come back right through the official SDK."""
    reference = reference_text(JFK)
    as_json = transcribe(sdk, JFK, response_format="json")
    assert word_error_rate(reference, as_json.text) <= 0.10
    assert as_json.usage.type == "duration" and as_json.usage.seconds == 11

    as_text = transcribe(sdk, JFK, response_format="text")
    assert as_text.strip() == as_json.text

    verbose = transcribe(sdk, JFK, response_format="verbose_json")
    assert (verbose.task, verbose.language) == ("transcribe", "english")
    assert verbose.duration == pytest.approx(JFK_SECONDS, abs=0.1)
    assert verbose.text == as_json.text
    assert verbose.segments and verbose.segments[0].id == 0
    assert all(segment.tokens for segment in verbose.segments)

    as_srt = transcribe(sdk, JFK, response_format="srt")
    assert_cues_in_order(srt_times(as_srt), JFK_SECONDS)
    srt_text = " ".join(s.content for s in srt.parse(as_srt))
    assert word_error_rate(reference, srt_text) <= 0.10

    as_vtt = transcribe(sdk, JFK, response_format="vtt")
    assert_cues_in_order(vtt_times(as_vtt), JFK_SECONDS)


def test_openai_sdk_translates_in_every_response_format(sdk: openai.OpenAI) -> None:
    """German speech comes back as English text in each format, verbose_json saying so."""
    as_json = translate(sdk, GERMAN, response_format="json")
    # `base` translates loosely ("...used as a small hall"): check the language, not the words.
    english = set(as_json.text.lower().replace(".", "").split())
    assert {"room", "portal", "was", "used"} <= english
    assert not {"raum", "wurde", "genutzt"} & english

    verbose = translate(sdk, GERMAN, response_format="verbose_json")
    assert (verbose.task, verbose.language) == ("translate", "english")
    assert verbose.text == as_json.text

    assert translate(sdk, GERMAN, response_format="text").strip() == as_json.text
    duration = verbose.duration
    assert_cues_in_order(srt_times(translate(sdk, GERMAN, response_format="srt")), duration)
    assert_cues_in_order(vtt_times(translate(sdk, GERMAN, response_format="vtt")), duration)


def test_openai_sdk_word_timestamps(sdk: openai.OpenAI) -> None:
    """timestamp_granularities=[word]: timed words in order, within the audio, matching the text."""
    verbose = transcribe(
        sdk, JFK, response_format="verbose_json", timestamp_granularities=["word", "segment"]
    )
    words = verbose.words
    assert len(words) >= 20
    assert_cues_in_order([(w.start, w.end) for w in words], JFK_SECONDS)
    spoken = " ".join(w.word for w in words)
    assert word_error_rate(reference_text(JFK), spoken) <= 0.10
    assert verbose.segments


def test_openai_sdk_word_granularity_needs_verbose_json(sdk: openai.OpenAI) -> None:
    """Word granularity with json is a 400 BadRequestError naming the parameter, as at OpenAI."""
    with pytest.raises(openai.BadRequestError) as caught:
        transcribe(sdk, JFK, response_format="json", timestamp_granularities=["word"])
    assert caught.value.status_code == 400
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["param"] == "timestamp_granularities"


def test_openai_sdk_unknown_model_is_a_400(sdk: openai.OpenAI) -> None:
    """A model the server does not know is a 400 BadRequestError with code model_not_found."""
    with pytest.raises(openai.BadRequestError) as caught, shared_clip(JFK).open("rb") as audio:
        sdk.audio.transcriptions.create(model="gpt-9-transcribe", file=audio)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "model_not_found"


def test_openai_sdk_stream_ends_with_the_same_text(sdk: openai.OpenAI) -> None:
    """stream=True on the 120 s talk: deltas arrive per segment, then done with the full text,
    which equals the non-streamed transcript."""
    events = list(transcribe(sdk, LONG, stream=True))
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]
    done = events[-1]
    assert done.type == "transcript.text.done"
    assert len(deltas) >= 5
    assert "".join(deltas).strip() == done.text
    assert done.usage is not None and done.usage.type == "duration"

    plain = transcribe(sdk, LONG, response_format="json")
    assert done.text == plain.text
    assert word_error_rate(reference_text(LONG), plain.text) <= 0.20


def test_openai_sdk_lists_models(sdk: openai.OpenAI) -> None:
    """models.list() offers whisper-1 and the bundled models; retrieve() finds one."""
    ids = [model.id for model in sdk.models.list()]
    assert ids[0] == "whisper-1"
    assert {"tiny.en", "base"} <= set(ids)
    assert sdk.models.retrieve("base").id == "base"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("large-v3")


def test_stream_client_leaving_cancels_the_job(live_server: Server, sdk: openai.OpenAI) -> None:
    """Closing a stream after the first delta cancels the job on the server."""
    with shared_clip(LONG).open("rb") as audio:
        stream = sdk.audio.transcriptions.create(model="whisper-1", file=audio, stream=True)
        first = next(iter(stream))
        assert first.type == "transcript.text.delta"
        stream.close()
    # The worker stops mid-decode and says so.
    live_server.wait_logged(lambda record: record["event"] == "job_cancelled", timeout_s=60)
    assert "job_cancelled_client_gone" in [record["event"] for record in live_server.log_records()]
    assert server_decoder_status(live_server.url)["tasks_running"] == 0


def pcm(clip: str) -> bytes:
    """A clip as raw 16 kHz mono s16le PCM, as Bazarr's ffmpeg pipe sends it."""
    samples = decode_audio(shared_clip(clip).read_bytes())
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def test_bazarr_asr_request_gives_srt_with_headers(live_server: Server) -> None:
    """Bazarr's /asr call (raw PCM, encode=false, output=srt) gets an SRT attachment."""
    response = httpx.post(
        live_server.url + "/asr",
        params={
            "task": "transcribe",
            "language": "en",
            "output": "srt",
            "encode": "false",
            "video_file": "/tv/Show/Season 1/episode.mkv",
        },
        files={"audio_file": ("audio_file", pcm(JFK))},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert response.headers["asr-engine"] == "faster_whisper"
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    assert response.headers["content-type"].startswith("application/x-subrip")
    subtitles = list(srt.parse(response.text))
    assert_cues_in_order(srt_times(response.text), JFK_SECONDS)
    assert word_error_rate(reference_text(JFK), " ".join(s.content for s in subtitles)) <= 0.10


def test_asr_shaping_is_honoured(live_server: Server) -> None:
    """max_line_width/max_line_count cut the 120 s talk into short, in-order, in-range cues."""
    with shared_clip(LONG).open("rb") as audio:
        response = httpx.post(
            live_server.url + "/asr",
            params={"output": "vtt", "max_line_width": "42", "max_line_count": "2"},
            files={"audio_file": (LONG, audio)},
            timeout=180,
        )
    assert response.status_code == 200, response.text
    captions = list(webvtt.from_string(response.text))
    text_chars = sum(len(" ".join(caption.lines)) for caption in captions)
    assert text_chars > 1000  # the whole talk is there
    assert len(captions) >= text_chars / (2 * 42)  # no cue holds more than two full lines
    for caption in captions:
        assert 1 <= len(caption.lines) <= 2
        assert all(len(line) <= 42 or " " not in line for line in caption.lines)
    assert_cues_in_order(vtt_times(response.text), 120.0)


@pytest.mark.parametrize(
    ("clip", "code", "name"),
    [
        ("de_picovoice_test_de.wav", "de", "german"),
        ("fr_picovoice_test_fr.wav", "fr", "french"),
        ("ru_coqui_ru.wav", "ru", "russian"),
        ("zh_aishell_BAC009S0724W0121.wav", "zh", "chinese"),
    ],
)
def test_detect_language_like_bazarr(live_server: Server, clip: str, code: str, name: str) -> None:
    """/detect-language with raw PCM (encode=false) names the right language."""
    response = httpx.post(
        live_server.url + "/detect-language",
        params={"encode": "false"},
        files={"audio_file": ("audio_file", pcm(clip))},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["language_code"], body["detected_language"]) == (code, name)
    assert 0.5 < body["confidence"] <= 1.0
    assert body["candidates"][0]["language_code"] == code
    assert response.headers["asr-engine"] == "faster_whisper"


def test_detect_language_looks_past_a_silent_start(live_server: Server) -> None:
    """Forty seconds of silence before French speech: detection still hears French."""
    silence = np.zeros(16000 * 40, dtype="<i2").tobytes()
    response = httpx.post(
        live_server.url + "/detect-language",
        params={"encode": "false"},
        files={"audio_file": ("audio_file", silence + pcm("fr_picovoice_test_fr.wav"))},
        timeout=60,
    )
    assert response.json()["language_code"] == "fr"


def run_cli(
    clip: str,
    server: Server,
    *options: str,
    env: dict[str, str] | None = None,
    timeout_s: float = 60,
) -> subprocess.CompletedProcess[str]:
    """`whisper-api transcribe CLIP --server URL OPTIONS...`, its output captured as text."""
    command = [sys.executable, "-m", "app", "transcribe", str(shared_clip(clip))]
    return subprocess.run(
        [*command, "--server", server.url, *options],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def test_cli_transcribes_the_long_clip_with_a_progress_bar(
    live_server: Server, tmp_path: Path
) -> None:
    """`whisper-api transcribe` shows a progress bar up to 100% and writes a valid SRT."""
    out = tmp_path / "talk.srt"
    completed = run_cli(
        LONG, live_server, "--format", "srt", "-o", str(out), env={"COLUMNS": "100"}, timeout_s=240
    )
    assert completed.returncode == 0, completed.stderr
    frames = completed.stderr.replace("\r", "\n").splitlines()
    bars = [frame for frame in frames if "s of audio" in frame]
    assert any("transcribing" in frame for frame in bars)
    assert any("100%" in frame and "120.0/120.0" in frame for frame in bars)
    assert len({frame.split("|")[0] for frame in bars}) >= 4  # it moved on the way
    subtitles = list(srt.parse(out.read_text(encoding="utf-8")))
    assert_cues_in_order(srt_times(out.read_text(encoding="utf-8")), 120.0)
    text = " ".join(s.content for s in subtitles)
    assert word_error_rate(reference_text(LONG), text) <= 0.20


def test_cli_error_is_one_line_and_non_zero(live_server: Server, tmp_path: Path) -> None:
    """A bad language: exit status 1 and one line on stderr that says why; nothing written."""
    completed = run_cli(JFK, live_server, "--language", "klingon", "-o", str(tmp_path / "x.txt"))
    assert completed.returncode == 1
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "unknown language 'klingon'" in lines[0]
    assert not (tmp_path / "x.txt").exists()
