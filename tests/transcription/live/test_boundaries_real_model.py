"""No word lost at a turn boundary: jfk committed by hand in the middle of each of its words.

The live model (tiny.en) and the session's own passes: for every word of the clip,
the first turn is committed in the middle of that word and the rest of the clip
follows as the second turn. The word cut in two is transcribed whole by one of the
turns (the final pass hears the audio after its turn, the next turn the audio before
its own), and together the two turns hold every word the model reads in the whole clip.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import jiwer
import numpy as np
import pytest

from app.clock import SystemClock
from app.transcription.audio import SAMPLE_RATE, decode_audio
from app.transcription.engine import FasterWhisperTranscriber
from app.transcription.live.audio import SpeechScorer, silero_scorer
from app.transcription.live.events import Completed, LiveEvent
from app.transcription.live.passes import whisper_pass
from app.transcription.live.session import LiveConfig, LiveSession
from app.transcription.live.turn import PassResult, normalise_word
from app.transcription.models import ModelSources, Placement, load_faster_whisper
from app.transcription.types import TranscribeOptions
from tests.conftest import make_settings, shared_clip

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def tiny() -> FasterWhisperTranscriber:
    """The bundled live model, loaded the way the live service loads it (one thread)."""
    settings = make_settings()
    path = ModelSources(None, settings.model_cache_dir, allow_download=False).locate("tiny.en")
    transcriber = load_faster_whisper(Path(path), Placement("cpu", "int8"), cpu_threads=1)
    assert isinstance(transcriber, FasterWhisperTranscriber)
    return transcriber


def pcm24(audio: np.ndarray) -> bytes:
    """16 kHz float samples as the 24 kHz PCM16 a client sends."""
    positions = np.arange(0, len(audio), SAMPLE_RATE / 24000)
    resampled = np.interp(positions, np.arange(len(audio)), audio)
    return (np.clip(resampled, -1, 1) * 32767).astype("<i2").tobytes()


async def two_turns(
    tiny: FasterWhisperTranscriber, scorer: SpeechScorer, first: bytes, rest: bytes
) -> list[str]:
    """`first` committed as one turn, `rest` as the next: the completed transcripts."""
    completed: list[str] = []

    async def emit(event: LiveEvent) -> None:
        if isinstance(event, Completed):
            completed.append(event.transcript)

    blocking = whisper_pass(tiny, "en")

    async def run_pass(audio: np.ndarray, prompt: str | None, config: LiveConfig) -> PassResult:
        return await asyncio.to_thread(blocking, audio, prompt)

    session = LiveSession(
        LiveConfig(language="en", turn_detection=None),
        run_pass=run_pass,
        emit=emit,
        clock=SystemClock(),
        scorer=scorer,
    )
    runner = asyncio.create_task(session.run())
    await session.append(first)
    assert await session.commit()
    await session.append(rest)
    assert await session.commit()
    await session.settled()
    runner.cancel()
    return completed


def words_of(text: str) -> list[str]:
    """The normalised words of a text."""
    return [w for w in (normalise_word(word) for word in text.split()) if w]


def test_a_boundary_in_the_middle_of_any_word_loses_no_word(
    tiny: FasterWhisperTranscriber,
) -> None:
    """For each word of jfk, a commit in its middle: no word of the clip's reading is lost
    (one may read differently, and the model may add a closing 'Thank you.' at the end)."""
    audio = decode_audio(shared_clip("en_jfk.flac").read_bytes())
    options = TranscribeOptions(language="en", word_timestamps=True, beam_size=1)
    whole = tiny.transcribe(audio, options, lambda *_: None, lambda: False)
    words = [word for segment in whole.segments for word in segment.words or ()]
    expected = words_of(whole.text)
    scorer = silero_scorer()
    lost = []
    for word in words:
        cut = round((word.start + word.end) / 2 * SAMPLE_RATE)
        turns = asyncio.run(two_turns(tiny, scorer, pcm24(audio[:cut]), pcm24(audio[cut:])))
        measured = jiwer.process_words(" ".join(expected), " ".join(words_of(" ".join(turns))))
        # A turn read without the previous sentence may spell a word differently
        # ("Americans" / "america"): one such change is the model's, a missing word is not.
        if measured.deletions or measured.substitutions > 1:
            lost.append((word.word, turns))
    assert not lost, lost
