"""One live pass: Whisper's settings for a live window, and the segments it leaves out."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.transcription.live.passes import MAX_PASS_TOKENS, whisper_pass
from app.transcription.types import Segment, Transcript, Word

Samples = np.ndarray


class LoopingTranscriber:
    """A model that says one good segment and then gets stuck in a loop of dots."""

    def transcribe(self, audio: Samples, options: Any, *_: Any) -> Transcript:
        """Two segments: real words, then '. . . .' (highly compressible)."""
        good = Segment(
            id=0,
            start=0.0,
            end=1.0,
            text=" hello there",
            compression_ratio=1.1,
            words=[Word(0.0, 0.5, " hello", 0.9), Word(0.5, 1.0, " there.", 0.9)],
        )
        stuck = Segment(
            id=1,
            start=1.0,
            end=2.0,
            text=" . . . .",
            compression_ratio=9.0,
            words=[Word(1.0 + i / 8, 1.1 + i / 8, " .", 0.5) for i in range(8)],
        )
        lone_dot = Segment(
            id=2,
            start=2.0,
            end=2.5,
            text=" .",
            compression_ratio=1.0,
            words=[Word(2.0, 2.5, " .", 0.5)],
        )
        # A breath decoded with low confidence and a fair chance of being silence.
        doubtful = Segment(
            id=3,
            start=2.5,
            end=3.0,
            text=" Thank you.",
            compression_ratio=0.6,
            no_speech_prob=0.43,
            avg_logprob=-1.13,
            words=[Word(2.5, 2.7, " Thank", 0.3), Word(2.7, 3.0, " you.", 0.3)],
        )
        self.options = options
        return Transcript(
            text="", language="en", language_probability=1.0, duration=3.0,
            segments=[good, stuck, lone_dot, doubtful],
        )  # fmt: skip


def test_a_pass_drops_loops_doubtful_silence_and_words_without_letters() -> None:
    """Looping segments, likely-silent doubtful ones and bare punctuation never reach a turn."""
    model = LoopingTranscriber()
    run = whisper_pass(model, "en")  # type: ignore[arg-type]
    result = run(np.zeros(16000, dtype=np.float32), None)
    assert [w.word for w in result.words] == [" hello", " there."]
    assert result.segment_ends == [1.0, 2.5]
    assert result.language == "en"
    # A pass never waits for a decoding stuck in a loop: its tokens are capped.
    assert model.options.max_new_tokens == MAX_PASS_TOKENS
    assert (model.options.temperature, model.options.beam_size) == (0.0, 1)
