"""A live session with a scripted model: turns, deltas, commits, clears and failures."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import numpy as np
import pytest

from app.transcription.live.events import (
    Cleared,
    Committed,
    Completed,
    Delta,
    LiveEvent,
    TurnFailed,
)
from app.transcription.live.session import LiveConfig, LiveSession
from app.transcription.live.turn import PassResult
from app.transcription.types import Word
from tests.transcription.rig import FakeClock

Samples = np.ndarray


class ScriptedModel:
    """Every pass hears the same words (or fails), and each pass is recorded."""

    def __init__(self, text: str, *, fail: bool = False) -> None:
        self.text, self.fail = text, fail
        self.passes: list[tuple[int, str | None]] = []

    async def run(self, audio: Samples, prompt: str | None, config: LiveConfig) -> PassResult:
        """One pass over `audio`."""
        self.passes.append((len(audio), prompt))
        if self.fail:
            raise RuntimeError("model broke")
        said = [
            Word(i * 0.3, (i + 1) * 0.3, " " + word, 0.9)
            for i, word in enumerate(self.text.split())
        ]
        return PassResult(words=said, segment_ends=[said[-1].end] if said else [])


def pcm(seconds: float) -> bytes:
    """Silence as 24 kHz PCM16."""
    return b"\0\0" * round(seconds * 24000)


@pytest.fixture
def events() -> Iterator[list[LiveEvent]]:
    """What the session emitted."""
    yield []


def manual_session(model: ScriptedModel, emitted: list[LiveEvent]) -> LiveSession:
    """A session with turn_detection null: turns end only by commit."""

    async def emit(event: LiveEvent) -> None:
        emitted.append(event)

    return LiveSession(
        LiveConfig(language="en", turn_detection=None, prompt="Names: Ada.", context_s=0),
        run_pass=model.run,
        emit=emit,
        clock=FakeClock(),
        scorer=None,
    )


async def settle(session: LiveSession) -> None:
    """Let the runner finish every turn."""
    for _ in range(200):
        if not session.busy:
            return
        await asyncio.sleep(0)
    raise AssertionError("the session never finished its turns")


async def test_a_committed_turn_gets_deltas_that_add_up_to_its_completed_transcript(
    events: list[LiveEvent],
) -> None:
    """Commit → committed, deltas of committed words only, then one completed."""
    model = ScriptedModel("ask not what your country can do")
    session = manual_session(model, events)
    runner = asyncio.create_task(session.run())
    for _ in range(25):
        await session.append(pcm(0.1))
        await asyncio.sleep(0)
    assert await session.commit()
    await settle(session)
    runner.cancel()
    kinds = [type(e) for e in events]
    assert kinds.count(Committed) == 1
    assert kinds.count(Completed) == 1
    assert kinds.index(Committed) < kinds.index(Completed) == len(kinds) - 1
    completed = events[-1]
    assert isinstance(completed, Completed)
    assert completed.transcript == "ask not what your country can do"
    deltas = [e.text for e in events if isinstance(e, Delta)]
    assert "".join(deltas) == completed.transcript
    assert completed.audio_seconds == pytest.approx(2.5, abs=0.05)
    assert all(prompt == "Names: Ada." for _, prompt in model.passes)


async def test_committing_without_audio_is_refused(events: list[LiveEvent]) -> None:
    """Less than 100 ms of audio cannot be committed."""
    session = manual_session(ScriptedModel("x"), events)
    assert not await session.commit()
    await session.append(pcm(0.05))
    assert not await session.commit()
    assert events == []


async def test_clear_drops_the_open_turn(events: list[LiveEvent]) -> None:
    """After clear nothing is left to transcribe, and the client is told."""
    model = ScriptedModel("hello")
    session = manual_session(model, events)
    await session.append(pcm(0.5))
    await session.clear()
    assert events == [Cleared()]
    assert not session.busy
    assert not await session.commit()


async def test_a_failing_model_fails_the_turn_and_the_session_goes_on(
    events: list[LiveEvent],
) -> None:
    """A pass that raises becomes a failed event for that turn only."""
    model = ScriptedModel("hello", fail=True)
    session = manual_session(model, events)
    runner = asyncio.create_task(session.run())
    await session.append(pcm(0.5))
    assert await session.commit()
    await settle(session)
    assert any(isinstance(e, TurnFailed) for e in events)
    model.fail = False
    await session.append(pcm(0.5))
    assert await session.commit()
    await settle(session)
    runner.cancel()
    assert isinstance(events[-1], Completed)
    assert events[-1].transcript == "hello"


def loudness_scorer(samples: Samples) -> list[float]:
    """Speech wherever a 32 ms frame is not silent."""
    frames = samples[: len(samples) // 512 * 512].reshape(-1, 512)
    return [0.9 if float(np.abs(frame).max()) > 0.01 else 0.0 for frame in frames]


def tone(seconds: float) -> bytes:
    """A loud 24 kHz PCM16 tone."""
    t = np.arange(round(seconds * 24000)) / 24000
    return (np.sin(2 * np.pi * 300 * t) * 10000).astype("<i2").tobytes()


async def test_server_vad_makes_a_turn_from_speech_to_the_silence_after_it(
    events: list[LiveEvent],
) -> None:
    """Silence, speech, silence: started (with prefix padding), stopped, committed, completed.

    The turn holds the speech with its padding and the silence that ended it.
    """
    from app.transcription.live.audio import TurnDetection
    from app.transcription.live.events import SpeechStarted, SpeechStopped

    async def emit(event: LiveEvent) -> None:
        events.append(event)

    model = ScriptedModel("one turn")
    session = LiveSession(
        LiveConfig(
            language="en", turn_detection=TurnDetection(silence_duration_ms=300), context_s=0
        ),
        run_pass=model.run,
        emit=emit,
        clock=FakeClock(),
        scorer=loudness_scorer,
    )
    runner = asyncio.create_task(session.run())
    for chunk in (pcm(1.0), tone(1.0), pcm(1.0)):
        await session.append(chunk)
    await settle(session)
    runner.cancel()
    kinds = [type(e) for e in events]
    assert kinds[:3] == [SpeechStarted, SpeechStopped, Committed]
    assert kinds[-1] is Completed
    started, stopped = events[0], events[1]
    assert isinstance(started, SpeechStarted) and isinstance(stopped, SpeechStopped)
    assert 650 <= started.audio_start_ms <= 750  # 1 s of silence less 300 ms of padding
    assert 1950 <= stopped.audio_end_ms <= 2100
    completed = events[-1]
    assert isinstance(completed, Completed)
    assert completed.audio_seconds == pytest.approx(1.6, abs=0.1)


async def test_a_final_model_writes_the_completed_text_after_the_live_models_deltas(
    events: list[LiveEvent],
) -> None:
    """With final_model, the closed turn's last pass runs on it and its text completes the turn."""
    seen: list[str | None] = []

    async def run(audio: Samples, prompt: str | None, config: LiveConfig) -> PassResult:
        seen.append(config.model)
        text = "stuff it into you" if config.model == "base" else "stuffered into you"
        said = [Word(i * 0.3, (i + 1) * 0.3, " " + w, 0.9) for i, w in enumerate(text.split())]
        return PassResult(words=said, segment_ends=[said[-1].end])

    async def emit(event: LiveEvent) -> None:
        events.append(event)

    config = LiveConfig(language="en", turn_detection=None, context_s=0, final_model="base")
    session = LiveSession(config, run_pass=run, emit=emit, clock=FakeClock(), scorer=None)
    runner = asyncio.create_task(session.run())
    for _ in range(25):
        await session.append(pcm(0.1))
        await asyncio.sleep(0)
    assert await session.commit()
    await settle(session)
    runner.cancel()
    assert seen[-1] == "base"
    assert set(seen[:-1]) == {None}  # the live passes: the server's live model
    deltas = "".join(e.text for e in events if isinstance(e, Delta))
    assert deltas == "stuffered into you"  # the live model's, agreed before the commit
    assert [e.transcript for e in events if isinstance(e, Completed)] == ["stuff it into you"]
    assert session.completed[0].text == "stuff it into you"


async def test_a_turns_passes_are_prompted_by_the_clients_prompt_not_earlier_turns(
    events: list[LiveEvent],
) -> None:
    """The second turn's passes get only the client's prompt (measured: earlier text hurt)."""
    model = ScriptedModel("ask not")
    session = manual_session(model, events)
    runner = asyncio.create_task(session.run())
    for _ in range(2):
        for _ in range(15):
            await session.append(pcm(0.1))
            await asyncio.sleep(0)
        assert await session.commit()
        await settle(session)
    runner.cancel()
    assert [e.transcript for e in events if isinstance(e, Completed)] == ["ask not", "ask not"]
    assert {prompt for _, prompt in model.passes} == {"Names: Ada."}


async def test_a_turn_is_passed_sooner_until_its_first_word_is_committed(
    events: list[LiveEvent],
) -> None:
    """Every 0.5 s of audio until two passes agree on a first word, then every 0.75 s."""
    model = ScriptedModel("ask not")
    session = manual_session(model, events)
    runner = asyncio.create_task(session.run())
    for _ in range(30):
        await session.append(pcm(0.1))
        for _ in range(5):
            await asyncio.sleep(0)
    runner.cancel()
    heard_s = [samples / 16000 for samples, _ in model.passes]
    gaps = [round(after - before, 2) for before, after in itertools.pairwise(heard_s)]
    # 100 ms chunks: a pass starts at the first chunk that brings the interval's audio.
    assert gaps == [0.5, 0.8, 0.8]
