"""One live pass: Whisper over a turn's audio with the live settings, its doubtful segments dropped.

Framework-free and blocking (the live executor runs it). A pass decodes at
temperature 0 with beam 1 and word timestamps, at most `MAX_PASS_TOKENS` a window,
and keeps only the segments that are speech: without the fallback ladder,
Whisper's own guards against a repetition loop and against a silent window taken
for speech are applied here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from app.transcription.engine import Transcriber
from app.transcription.live.turn import LivePass, PassResult, normalise_word
from app.transcription.progress import Estimate
from app.transcription.types import Segment, TranscribeOptions

__all__ = ["MAX_PASS_TOKENS", "whisper_pass"]

Samples = npt.NDArray[np.float32]
# Whisper's threshold: text that compresses better than this is a repetition loop.
MAX_COMPRESSION_RATIO = 2.4
# A segment this likely to be silence, decoded with low confidence, is left out.
DOUBTFUL_NO_SPEECH = 0.3
# Whisper's bar for low confidence: a window's average log-probability below this.
LOW_LOGPROB = -1.0
# A word shorter than this (one timestamp step) was not said.
MIN_WORD_S = 0.02
# Tokens one window of a pass may generate: ~22 s of fast speech with its timestamps
# needs about 110; a decoding stuck in a loop stops here instead of at 448.
MAX_PASS_TOKENS = 160


def whisper_pass(
    transcriber: Transcriber, language: str | None, should_stop: Callable[[], bool] = lambda: False
) -> LivePass:
    """A blocking pass over a turn with the live settings: words, temperature 0, beam 1.

    `should_stop` is asked between segments: a pass whose client left, or whose
    server stops, ends there (raising `JobCancelledError`) instead of running on.
    """

    def run(audio: Samples, prompt: str | None) -> PassResult:
        # Temperature 0 only: the fallback ladder could make one pass take many seconds.
        asked = TranscribeOptions(
            language=language,
            initial_prompt=prompt,
            word_timestamps=True,
            beam_size=1,
            temperature=0.0,
            max_new_tokens=MAX_PASS_TOKENS,
        )
        transcript = transcriber.transcribe(audio, asked, _ignore, should_stop)
        # Without the fallback ladder, Whisper's own guard against a decoding stuck in a
        # loop (". . . ." or one phrase again and again) is ours to apply.
        kept = [s for s in transcript.segments if _heard(s)]
        # Words of no length are the model going on where the audio ran out (it repeats
        # its prompt or says "Thank you."): not speech.
        words = [
            w
            for s in kept
            for w in s.words or ()
            if normalise_word(w.word) and w.end - w.start >= MIN_WORD_S
        ]
        return PassResult(
            words=words,
            segment_ends=[s.end for s in kept],
            language=transcript.language,
        )

    return run


def _heard(segment: Segment) -> bool:
    """Whether a pass's segment is speech worth committing.

    A repetition loop is not. Nor is a doubtful segment the model thinks may be
    silence: Whisper calls a window silent at no_speech_prob > 0.6 with
    avg_logprob < -1 and retries other doubtful ones at higher temperatures; a live
    pass has no such retry, so it drops them at a lower no-speech bar (a breath or a
    cough between turns otherwise comes out as "Thank you.").
    """
    if segment.compression_ratio > MAX_COMPRESSION_RATIO:
        return False
    return not (segment.no_speech_prob > DOUBTFUL_NO_SPEECH and segment.avg_logprob < LOW_LOGPROB)


def _ignore(_: float, __: Estimate | None = None) -> None:
    """The progress callback: a pass reports none."""
    return None
