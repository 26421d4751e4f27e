"""A live session's text: in the audio's order, and only words said where a voice was heard."""

from __future__ import annotations

import asyncio

import numpy as np

from app.transcription.live.audio import TurnDetection
from app.transcription.live.events import Completed, LiveEvent
from app.transcription.live.session import LiveConfig, LiveSession
from app.transcription.live.transcript import transcript_of
from app.transcription.live.turn import PassResult
from app.transcription.types import Word
from tests.transcription.live.test_session import loudness_scorer, pcm, settle, tone
from tests.transcription.rig import FakeClock


def vad_session(run_pass: object, emitted: list[LiveEvent]) -> LiveSession:
    """A server-VAD session (loudness detector, 300 ms of silence ends a turn) on `run_pass`."""

    async def emit(event: LiveEvent) -> None:
        emitted.append(event)

    return LiveSession(
        LiveConfig(
            language="en", turn_detection=TurnDetection(silence_duration_ms=300), context_s=0
        ),
        run_pass=run_pass,  # type: ignore[arg-type]
        emit=emit,
        clock=FakeClock(),
        scorer=loudness_scorer,
    )


async def test_turns_complete_in_the_audios_order_when_a_later_one_is_quicker() -> None:
    """The first turn's pass is slow, the second's instant: completed events keep audio order,
    and so does the kept transcript."""
    first_may_finish = asyncio.Event()
    events: list[LiveEvent] = []

    async def model(audio: np.ndarray, prompt: str | None, config: LiveConfig) -> PassResult:
        if not any(isinstance(e, Completed) for e in events):  # the first turn's passes
            await first_may_finish.wait()
            return PassResult(words=[Word(0.3, 0.8, " first", 0.9)])
        return PassResult(words=[Word(0.3, 0.8, " second", 0.9)])

    session = vad_session(model, events)
    runner = asyncio.create_task(session.run())
    for chunk in (pcm(1.0), tone(0.8), pcm(1.0), tone(0.8), pcm(1.0)):
        await session.append(chunk)
    await asyncio.sleep(0.01)
    first_may_finish.set()
    await settle(session)
    runner.cancel()
    assert [e.transcript for e in events if isinstance(e, Completed)] == ["first", "second"]
    kept = transcript_of(list(reversed(session.completed)), duration_s=5, fallback_language="en")
    assert kept.text == "first second"
    assert [s.text.strip() for s in kept.segments] == ["first", "second"]


async def test_words_the_model_puts_in_silence_are_dropped() -> None:
    """A word where the detector heard a voice stands; 'Thank you.' in the silence does not."""

    async def model(audio: np.ndarray, prompt: str | None, config: LiveConfig) -> PassResult:
        said = Word(0.4, 0.8, " real", 0.9)  # inside the tone (the turn starts 300 ms before)
        invented = [Word(1.7, 1.8, " Thank", 0.5), Word(1.8, 1.9, " you.", 0.5)]
        return PassResult(words=[said, *invented])

    events: list[LiveEvent] = []
    session = vad_session(model, events)
    runner = asyncio.create_task(session.run())
    for chunk in (pcm(1.0), tone(1.0), pcm(1.5)):
        await session.append(chunk)
    await settle(session)
    runner.cancel()
    assert [e.transcript for e in events if isinstance(e, Completed)] == ["real"]


async def test_a_click_in_silence_opens_no_turn() -> None:
    """100 ms of sound (shorter than the detector's minimum speech) commits nothing."""
    passes: list[int] = []

    async def model(audio: np.ndarray, prompt: str | None, config: LiveConfig) -> PassResult:
        passes.append(len(audio))
        return PassResult(words=[Word(0.0, 0.5, " Thanks", 0.5)])

    events: list[LiveEvent] = []
    session = vad_session(model, events)
    runner = asyncio.create_task(session.run())
    for chunk in (pcm(1.0), tone(0.1), pcm(1.0)):
        await session.append(chunk)
    await settle(session)
    runner.cancel()
    assert events == [] and passes == []
