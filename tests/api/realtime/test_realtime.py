"""/v1/realtime against a real server process, driven by the official OpenAI SDK.

One server for the module (loading models is slow on a shared CPU): API keys on,
MAX_LIVE_SESSIONS=1. Assertions are about behaviour and order, never speed: the
time of each event is compared with when the audio was sent, not with a budget.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import websockets
from openai import AsyncOpenAI

from app.bench.runner import word_error_rate
from tests.conftest import reference_text, shared_clip
from tests.live_stream import (
    COMPLETED,
    DELTA,
    clip_pcm24,
    silence,
    stream,
    transcription_session,
)
from tests.server_process import Server, served, server_upload, wait_until

pytestmark = pytest.mark.real_model

KEY = "live-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
SERVER_VAD = {"type": "server_vad", "silence_duration_ms": 800}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The real server with the live route, one session at a time, API keys required."""
    with served(
        tmp_path_factory.mktemp("live"),
        ready_timeout_s=240,
        API_KEYS=KEY,
        MAX_LIVE_SESSIONS="1",
        LOAD_MODEL_ON_STARTUP="1",
        LIVE_IDLE_TIMEOUT_S="120",
    ) as running:
        yield running


def active_sessions(server: Server) -> float:
    """The live-sessions gauge from /metrics."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    match = re.search(r"^whisper_api_live_sessions_active (\S+)$", text, re.M)
    assert match is not None, text
    return float(match.group(1))


@pytest.fixture(autouse=True)
def no_session_open(server: Server) -> None:
    """Each test starts when the previous test's session has really ended."""
    wait_until(
        lambda: active_sessions(server) == 0,
        timeout_s=60,
        interval_s=0.1,
        message="a live session never ended",
    )


def test_clip_at_real_time_pace_gives_deltas_before_it_ends_and_a_close_transcript(
    server: Server,
) -> None:
    """Words arrive while the clip is still playing; the turns add up to the reference."""
    name = "en_ljspeech_LJ001-0001.wav"
    run = asyncio.run(
        stream(
            server.url,
            KEY,
            clip_pcm24(shared_clip(name)),
            session=transcription_session(turn_detection=SERVER_VAD),
            trailing=silence(2.0),
        )
    )
    deltas = run.of_type(DELTA)
    assert deltas, run.events
    assert min(run.times(DELTA)) < run.audio_sent_at
    transcript = " ".join(run.transcripts)
    assert word_error_rate(reference_text(name), transcript) <= 0.10, transcript
    # The deltas of a turn add up to its transcript.
    for completed in run.of_type(COMPLETED):
        joined = "".join(d.delta for d in deltas if d.item_id == completed.item_id)
        assert joined == completed.transcript


def test_server_vad_splits_two_utterances_separated_by_silence_into_two_turns(
    server: Server,
) -> None:
    """Speech, 2 s of silence, speech: two committed turns, each with its own transcript."""
    first, second = (
        "en_ls-test-clean_1089-134686-0001.flac",
        "en_ls-test-clean_1089-134691-0000.flac",
    )
    pcm = clip_pcm24(shared_clip(first)) + silence(2.0) + clip_pcm24(shared_clip(second))
    run = asyncio.run(
        stream(
            server.url,
            KEY,
            pcm,
            session=transcription_session(turn_detection=SERVER_VAD),
            speed=4.0,
            trailing=silence(2.0),
        )
    )
    assert len(run.of_type("input_audio_buffer.speech_started")) == 2, run.events
    committed = run.of_type("input_audio_buffer.committed")
    assert len(committed) == 2
    assert committed[1].previous_item_id == committed[0].item_id
    stopped = run.of_type("input_audio_buffer.speech_stopped")
    assert (
        stopped[0].audio_end_ms < run.of_type("input_audio_buffer.speech_started")[1].audio_start_ms
    )
    assert [c.item_id for c in run.of_type(COMPLETED)] == [c.item_id for c in committed]
    # Each turn holds its own utterance (a word or two may differ on an 8-word clip with the
    # live model; the other turn's words would put it far off), and together they are close.
    for name, transcript in zip((first, second), run.transcripts, strict=True):
        assert word_error_rate(reference_text(name), transcript) <= 0.5, transcript
    both = " ".join(reference_text(name) for name in (first, second))
    assert word_error_rate(both, " ".join(run.transcripts)) <= 0.25, run.transcripts


def test_manual_commit_without_turn_detection_completes_the_buffer(server: Server) -> None:
    """turn_detection null: no speech events; the client's commit makes one whole turn."""
    name = "en_jfk.flac"
    run = asyncio.run(
        stream(
            server.url,
            KEY,
            clip_pcm24(shared_clip(name)),
            session=transcription_session(turn_detection=None),
            speed=4.0,
            commit=True,
        )
    )
    assert not run.of_type("input_audio_buffer.speech_started")
    assert len(run.of_type("input_audio_buffer.committed")) == 1
    (transcript,) = run.transcripts
    assert word_error_rate(reference_text(name), transcript) <= 0.10, transcript


def test_committing_an_empty_buffer_is_an_error_event(server: Server) -> None:
    """A commit with no audio answers OpenAI's input_audio_buffer_commit_empty error."""

    async def commit_nothing() -> Any:
        client = AsyncOpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
        async with client.realtime.connect(extra_query={"intent": "transcription"}) as connection:
            await connection.input_audio_buffer.commit()
            async for event in connection:
                if event.type == "error":
                    return event

    error = asyncio.run(asyncio.wait_for(commit_nothing(), 60))
    assert error.error.code == "input_audio_buffer_commit_empty"


def test_a_session_over_max_live_sessions_is_refused_with_429(server: Server) -> None:
    """With MAX_LIVE_SESSIONS=1 taken, the next upgrade answers 429 with Retry-After."""

    async def second_while_first_open() -> websockets.InvalidStatus:
        client = AsyncOpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
        async with client.realtime.connect(extra_query={"intent": "transcription"}) as first:
            created = await first.recv()
            assert created.type == "session.created"
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with client.realtime.connect(extra_query={"intent": "transcription"}):
                    pass
            return refused.value

    refusal = asyncio.run(asyncio.wait_for(second_while_first_open(), 60))
    assert refusal.response.status_code == 429
    assert int(refusal.response.headers["Retry-After"]) >= 1


def test_a_wrong_api_key_is_refused_before_the_upgrade(server: Server) -> None:
    """A key the server does not know gets 401, and no session is opened."""

    async def connect_with_wrong_key() -> websockets.InvalidStatus:
        client = AsyncOpenAI(
            base_url=server.url + "/v1", api_key="wrong-key-0123456789", max_retries=0
        )
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with client.realtime.connect(extra_query={"intent": "transcription"}):
                pass
        return refused.value

    refusal = asyncio.run(asyncio.wait_for(connect_with_wrong_key(), 60))
    assert refusal.response.status_code == 401
    assert active_sessions(server) == 0


def test_a_batch_job_beside_a_live_session_still_finishes_with_its_usual_quality(
    server: Server,
) -> None:
    """An upload sent while a live session streams gets the same text as on its own."""
    batch_clip = "en_ljspeech_LJ001-0003.wav"
    alone = server_upload(
        server.url, "/v1/audio/transcriptions", shared_clip(batch_clip), headers=AUTH, timeout_s=300
    )
    assert alone.status_code == 200, alone.text
    answers: list[httpx.Response] = []

    def batch() -> None:
        answers.append(
            server_upload(
                server.url,
                "/v1/audio/transcriptions",
                shared_clip(batch_clip),
                headers=AUTH,
                timeout_s=300,
            )
        )

    worker = threading.Thread(target=batch)
    live_name = "en_ljspeech_LJ001-0001.wav"
    pcm = clip_pcm24(shared_clip(live_name))

    async def live_with_batch_beside() -> Any:
        started = False

        async def start_batch_once_live() -> None:
            nonlocal started
            await asyncio.to_thread(wait_until, lambda: active_sessions(server) == 1, timeout_s=60)
            worker.start()
            started = True

        kick = asyncio.create_task(start_batch_once_live())
        run = await stream(
            server.url,
            KEY,
            pcm,
            session=transcription_session(turn_detection=SERVER_VAD),
            trailing=silence(2.0),
        )
        await kick
        assert started
        return run

    run = asyncio.run(live_with_batch_beside())
    worker.join(timeout=300)
    assert answers and answers[0].status_code == 200, answers
    assert answers[0].json()["text"] == alone.json()["text"]
    live_text = " ".join(run.transcripts)
    assert word_error_rate(reference_text(live_name), live_text) <= 0.10, live_text


def test_the_live_cli_prints_a_files_words_as_they_are_committed(server: Server) -> None:
    """`whisper-api live --file` streams at real-time pace and prints each turn on a line."""
    name = "en_ljspeech_LJ001-0001.wav"
    command = [
        sys.executable,
        "-m",
        "app",
        "live",
        "--file",
        str(shared_clip(name)),
        "--server",
        server.url,
        "--api-key",
        KEY,
        "--language",
        "en",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    assert word_error_rate(reference_text(name), done.stdout) <= 0.10, done.stdout
    assert done.stdout.endswith("\n")


def test_the_live_cli_keeps_the_transcript_as_a_task_when_asked(server: Server) -> None:
    """`whisper-api live --keep`: after the stream, the task's text is what was printed."""
    name = "en_ljspeech_LJ001-0002.wav"
    command = [
        *(sys.executable, "-m", "app", "live", "--file", str(shared_clip(name))),
        *("--server", server.url, "--api-key", KEY, "--language", "en", "--keep"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    task_id = done.stderr.split("kept as task ", 1)[1].split()[0]
    headers = {"Authorization": f"Bearer {KEY}"}
    text = httpx.get(
        f"{server.url}/api/v1/tasks/{task_id}/result?format=txt", headers=headers, timeout=10
    ).text
    assert " ".join(text.split()) == " ".join(done.stdout.split())


def test_the_live_cli_says_when_the_key_is_refused(server: Server) -> None:
    """A wrong key ends the CLI with status 1 and the HTTP status on stderr."""
    command = [
        sys.executable,
        "-m",
        "app",
        "live",
        "--file",
        str(shared_clip("en_jfk.flac")),
        "--server",
        server.url,
        "--api-key",
        "wrong-key-0123456789",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert "401" in done.stderr


def test_jfk_spoken_twice_reads_jfk_twice_in_order(server: Server) -> None:
    """Issue 27's done-when: jfk, 1 s of silence, jfk at real-time pace with OpenAI's default
    server VAD: the turns read jfk twice, in order, WER <= 3 %, nothing invented."""
    jfk = clip_pcm24(shared_clip("en_jfk.flac"))
    run = asyncio.run(
        stream(
            server.url,
            KEY,
            jfk + silence(1.0) + jfk,
            session=transcription_session(turn_detection={"type": "server_vad"}),
            trailing=silence(2.0),
        )
    )
    reference = reference_text("en_jfk.flac").strip()
    transcript = " ".join(run.transcripts)
    assert word_error_rate(f"{reference} {reference}", transcript) <= 0.03, run.transcripts
    committed = [c.item_id for c in run.of_type("input_audio_buffer.committed")]
    assert [c.item_id for c in run.of_type(COMPLETED)] == committed
    assert all(run.transcripts), run.transcripts  # no turn without words


def test_five_minutes_of_silence_and_room_noise_complete_no_text(server: Server) -> None:
    """Issue 27's done-when: no speech, no text (streamed at 20x: nothing piles up)."""
    from app.bench.live import room_noise

    run = asyncio.run(
        stream(
            server.url,
            KEY,
            room_noise(300.0),
            session=transcription_session(turn_detection={"type": "server_vad"}),
            speed=20.0,
        )
    )
    assert [t for t in run.transcripts if t.strip()] == [], run.transcripts
    assert not run.of_type(DELTA)


def babble_bursts(count: int) -> bytes:
    """Bursts that sound like a voice and say nothing: 0.6 s of a read clip played backwards,
    or its first 0.3 s (a syllable), each followed by 1.4 s of silence."""
    clip = np.frombuffer(clip_pcm24(shared_clip("en_ljspeech_LJ001-0003.wav")), dtype="<i2")
    parts = []
    for index in range(count):
        at = round((1.5 + index) * 24000)
        burst = clip[at : at + 14400][::-1] if index % 2 == 0 else clip[at : at + 7200]
        parts += [burst.tobytes(), silence(2.0 - len(burst) / 24000)]
    return b"".join(parts)


def test_a_turn_without_a_word_is_never_announced_nor_completed_empty(server: Server) -> None:
    """Issue 27: bursts the detector takes for speech: a turn that ends without a word is only
    dropped (x. event); every turn OpenAI clients hear of is committed and completed with text."""
    run = asyncio.run(
        stream(
            server.url,
            KEY,
            babble_bursts(16),
            session=transcription_session(turn_detection={"type": "server_vad"}),
            speed=2.0,
            trailing=silence(2.0),
        )
    )
    pending = [e.item_id for e in run.of_type("x.whisper_api.turn.pending")]
    dropped = [e.item_id for e in run.of_type("x.whisper_api.turn.dropped")]
    completed = [e.item_id for e in run.of_type(COMPLETED)]
    assert dropped, run.transcripts  # the bursts made turns that had no word
    assert all(text.strip() for text in run.transcripts), run.transcripts
    assert sorted(completed + dropped) == sorted(pending)
    started = [e.item_id for e in run.of_type("input_audio_buffer.speech_started")]
    committed = run.of_type("input_audio_buffer.committed")
    assert started == [c.item_id for c in committed] == completed
    assert not set(dropped) & {e.item_id for e in run.of_type(DELTA)}
    previous = [c.previous_item_id for c in committed]
    assert previous == [None, *completed[:-1]]  # a dropped turn is nobody's previous item
