"""A live session's bounds: turns capped in length, audio owned by one turn, appends held back."""

from __future__ import annotations

import asyncio
import itertools

import numpy as np
import pytest

from app.transcription.audio import SAMPLE_RATE
from app.transcription.live.audio import TurnDetection
from app.transcription.live.events import Committed, Completed, LiveEvent, SpeechStarted
from app.transcription.live.limits import BufferFullError, LiveLimits
from app.transcription.live.session import LiveConfig, LiveSession
from app.transcription.live.turn import LiveTurn, PassResult
from app.transcription.types import Word
from tests.transcription.live.test_session import ScriptedModel, loudness_scorer, pcm, settle, tone
from tests.transcription.rig import FakeClock


def session_with(
    model: ScriptedModel, emitted: list[LiveEvent], *, vad: bool, limits: LiveLimits
) -> LiveSession:
    """A session on `model` (server VAD on a loudness detector, or manual commits)."""

    async def emit(event: LiveEvent) -> None:
        emitted.append(event)

    detection = TurnDetection(silence_duration_ms=300) if vad else None
    return LiveSession(
        LiveConfig(language="en", turn_detection=detection, context_s=0),
        run_pass=model.run,
        emit=emit,
        clock=FakeClock(),
        scorer=loudness_scorer,
        limits=limits,
    )


def turn_spans(events: list[LiveEvent]) -> list[tuple[float, float]]:
    """(start, end) in seconds of each completed turn, from its start event and its length."""
    starts = {e.item_id: e.audio_start_ms / 1000 for e in events if isinstance(e, SpeechStarted)}
    return [
        (starts[e.item_id], starts[e.item_id] + e.audio_seconds)
        for e in events
        if isinstance(e, Completed)
    ]


async def test_a_turn_longer_than_the_cap_is_committed_and_speech_goes_on_in_the_next() -> None:
    """7 s of speech with a 2 s cap: turns of at most 2 s that meet end to end, nothing lost."""
    events: list[LiveEvent] = []
    session = session_with(
        ScriptedModel("word"), events, vad=True, limits=LiveLimits(max_turn_s=2.0)
    )
    runner = asyncio.create_task(session.run())
    await session.append(pcm(1.0))
    for _ in range(70):
        await session.append(tone(0.1))
    await session.append(pcm(1.0))
    await settle(session)
    runner.cancel()
    spans = turn_spans(events)
    assert len(spans) == 4
    assert all(end - start <= 2.0 + 1e-3 for start, end in spans)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start == pytest.approx(end, abs=1e-3)
    assert spans[0][0] == pytest.approx(0.7, abs=0.05)  # 300 ms of padding before the speech


async def test_without_server_vad_a_never_committed_stream_is_cut_at_the_cap() -> None:
    """turn_detection null and no commit: the open turn never holds more than the cap."""
    events: list[LiveEvent] = []
    session = session_with(
        ScriptedModel("noise"), events, vad=False, limits=LiveLimits(max_turn_s=3.0)
    )
    runner = asyncio.create_task(session.run())
    for _ in range(10):
        await session.append(pcm(1.0))
    await settle(session)
    runner.cancel()
    committed = [e for e in events if isinstance(e, Committed)]
    completed = [e for e in events if isinstance(e, Completed)]
    assert len(committed) == 3 and len(completed) == 3
    assert all(e.audio_seconds <= 3.0 + 1e-3 for e in completed)


async def test_one_huge_append_is_split_into_turns_like_many_small_ones() -> None:
    """A single append of 2 minutes (the protocol allows ~5) is held to the turn cap too."""
    events: list[LiveEvent] = []
    session = session_with(
        ScriptedModel("hum"), events, vad=True, limits=LiveLimits(max_turn_s=30.0)
    )
    runner = asyncio.create_task(session.run())
    await session.append(tone(120.0))
    await settle(session)
    runner.cancel()
    # Three full turns; the last 30 s are the open turn (speech has not stopped).
    assert turn_spans(events) == [(0.0, 30.0), (30.0, 60.0), (60.0, 90.0)]


async def test_appends_are_refused_while_too_much_audio_awaits_its_transcript() -> None:
    """A client far ahead of the model is told (its chunk dropped) instead of filling memory."""
    gate = asyncio.Event()

    class GatedModel(ScriptedModel):
        async def run(
            self, audio: np.ndarray, prompt: str | None, config: LiveConfig
        ) -> PassResult:
            """Wait for the gate, then hear a word."""
            await gate.wait()
            return PassResult(words=[Word(0.0, 0.3, " word", 0.9)])

    events: list[LiveEvent] = []
    limits = LiveLimits(max_turn_s=2.0, max_buffered_s=5.0)
    session = session_with(GatedModel("word"), events, vad=False, limits=limits)
    runner = asyncio.create_task(session.run())
    for _ in range(6):
        await session.append(pcm(1.0))
    with pytest.raises(BufferFullError):
        await session.append(pcm(1.0))
    gate.set()
    await settle(session)
    await session.append(pcm(1.0))  # room again once the turns are transcribed
    runner.cancel()


def test_appending_to_a_turn_copies_only_the_new_samples() -> None:
    """The turn's buffer grows by doubling: a thousand appends do not re-copy the whole turn."""
    turn = LiveTurn("item", start_sample=0)
    chunk = np.ones(1600, dtype=np.float32)
    buffers = set()
    for index in range(1000):
        turn.append(chunk * index)
        buffers.add(id(turn._buffer))
    assert len(buffers) <= 12  # log2(1000 * 1600 / 16000) + a few
    assert len(turn.audio) == 1000 * 1600
    assert turn.audio[-1] == 999 and turn.audio[1600] == 1
    turn.end_at(SAMPLE_RATE)
    assert len(turn.audio) == SAMPLE_RATE
