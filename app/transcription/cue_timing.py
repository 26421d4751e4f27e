"""Word timings for subtitle cues that leave the decoding exactly as it was.

faster-whisper 1.2.1 times words inside its sequential `generate_segments()`: right after
`add_word_timestamps()` it moves the seek to the last word's end (`get_end`) and sets
each segment's start and end from its words. The few silent tenths left after the last
word are then decoded again, conditioned on the text so far, and Whisper may repeat the
start; and a segment's new times can change which segments are kept. So a client that
did not ask for word timings must get the decoding of a plain request.

`CueTimedWhisperModel.transcribe_for_cues` runs faster-whisper with word timing on but
*shadowed*: `add_word_timestamps` aligns a copy of each window's segments and files the
words aside, leaving the segments themselves untouched with no words. `get_end` then
reads the segments' own last timestamp, the same place the plain decoding seeks to, and
every segment keeps its decoded times. The words are put back on the segments as they
come out. Aligning costs one decoder pass over the window's text per window (the encoder
output is the one the window was decoded from).

With `vad_filter`, faster-whisper maps the timed words back onto the whole audio and then
sets each segment's start and end from its words (as it does whenever it times words): the
text is still the plain decoding's, the segment times follow the words.

Short clips decoded together in one batch (app.transcription.batching) are aligned in
one pass as well (`align_batch`), each clip's words as if it had been aligned alone.
"""

from __future__ import annotations

import copy
import inspect
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from faster_whisper import WhisperModel
from faster_whisper.transcribe import Word

from app.transcription.single_pass import SinglePassWhisperModel

__all__ = ["APPEND_PUNCTUATIONS", "PREPEND_PUNCTUATIONS", "CueTimedWhisperModel"]

_DEFAULTS = inspect.signature(WhisperModel.transcribe).parameters
# faster-whisper's own defaults: punctuation joined to the word before or after it.
PREPEND_PUNCTUATIONS: str = _DEFAULTS["prepend_punctuations"].default
APPEND_PUNCTUATIONS: str = _DEFAULTS["append_punctuations"].default

# A segment as generate_segments() knows it before it is yielded: its window and times.
_Key = tuple[int, float, float]


def _key(seek: Any, start: Any, end: Any) -> _Key:
    return (int(seek), float(start), float(end))


@dataclass(slots=True)
class _Shadow:
    """The words aligned for one decoding, by segment, until each segment is yielded."""

    words: dict[_Key, list[list[dict[str, Any]]]] = field(default_factory=dict)
    # What faster-whisper's own word timing would carry from window to window.
    last_speech: float = 0.0


class CueTimedWhisperModel(SinglePassWhisperModel):
    """A WhisperModel that can time words for cues without changing what it decodes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Per inference thread: a decoding asked to be shadowed (taken by generate_segments),
        # the shadow in force while its generator runs, alignments computed for a batch.
        self._cues = threading.local()

    def transcribe_for_cues(self, audio: Any, **options: Any) -> tuple[Iterator[Any], Any]:
        """`transcribe()` with every segment's words timed, its decoding as without them."""
        self._cues.pending = True
        try:
            return self.transcribe(audio, word_timestamps=True, **options)  # type: ignore[no-any-return]
        finally:
            self._cues.pending = False

    def generate_segments(
        self,
        features: Any,
        tokenizer: Any,
        options: Any,
        log_progress: Any,
        encoder_output: Any = None,
    ) -> Any:
        """Shadow the word timing of the decoding that `transcribe_for_cues` started."""
        shadowed = getattr(self._cues, "pending", False)
        self._cues.pending = False
        segments = super().generate_segments(
            features, tokenizer, options, log_progress, encoder_output
        )
        return self._with_words(segments, _Shadow()) if shadowed else segments

    def _with_words(self, segments: Iterator[Any], shadow: _Shadow) -> Iterator[Any]:
        """The decoded segments, each given the words aligned for it aside."""
        while True:
            # The shadow is in force only while faster-whisper's generator runs.
            self._cues.shadow = shadow
            try:
                segment = next(segments, None)
            finally:
                self._cues.shadow = None
            if segment is None:
                return
            waiting = shadow.words.get(_key(segment.seek, segment.start, segment.end)) or [[]]
            segment.words = [Word(**word) for word in waiting.pop(0)]
            yield segment

    def add_word_timestamps(
        self,
        segments: list[Any],
        tokenizer: Any,
        encoder_output: Any,
        num_frames: Any,
        prepend_punctuations: str,
        append_punctuations: str,
        last_speech_timestamp: float,
    ) -> Any:
        """Under a shadow: align copies, file their words aside, leave the segments wordless."""
        shadow: _Shadow | None = getattr(self._cues, "shadow", None)
        given = getattr(self._cues, "aligned", None)
        if shadow is None or given is not None:
            return super().add_word_timestamps(
                segments,
                tokenizer,
                encoder_output,
                num_frames,
                prepend_punctuations,
                append_punctuations,
                last_speech_timestamp,
            )
        copies = copy.deepcopy(segments)
        shadow.last_speech = super().add_word_timestamps(
            copies,
            tokenizer,
            encoder_output,
            num_frames,
            prepend_punctuations,
            append_punctuations,
            shadow.last_speech,
        )
        for window, aligned_window in zip(segments, copies, strict=True):
            for segment, aligned in zip(window, aligned_window, strict=True):
                key = _key(segment["seek"], segment["start"], segment["end"])
                shadow.words.setdefault(key, []).append(aligned["words"])
                segment["words"] = []  # get_end() reads the segment's own end instead
        return last_speech_timestamp

    def find_alignment(
        self,
        tokenizer: Any,
        text_tokens: list[Any],
        encoder_output: Any,
        num_frames: Any,
        median_filter_width: int = 7,
    ) -> Any:
        """The alignment `align_batch` computed for this window, else faster-whisper's."""
        given = getattr(self._cues, "aligned", None)
        if given is not None:
            return given
        return super().find_alignment(
            tokenizer, text_tokens, encoder_output, num_frames, median_filter_width
        )

    def align_batch(
        self,
        tokenizer: Any,
        windows: list[list[dict[str, Any]]],
        encoder_output: Any,
        num_frames: list[int],
    ) -> list[list[list[dict[str, Any]]]]:
        """Each window's segments' words (one list per segment), aligned in one pass.

        Each window is a separate clip starting at 0 s: its words are placed as if it were
        aligned alone (faster-whisper's batched call would carry the last word's end from
        one window into the next). The segments themselves are not changed.
        """
        text_tokens = [
            [token for segment in window for token in segment["tokens"] if token < tokenizer.eot]
            for window in windows
        ]
        alignments = super().find_alignment(tokenizer, text_tokens, encoder_output, num_frames)
        words: list[list[list[dict[str, Any]]]] = []
        for window, alignment, frames in zip(windows, alignments, num_frames, strict=True):
            copies = copy.deepcopy(window)
            self._cues.aligned = [alignment]
            try:
                self.add_word_timestamps(
                    [copies],
                    tokenizer,
                    encoder_output,
                    frames,
                    PREPEND_PUNCTUATIONS,
                    APPEND_PUNCTUATIONS,
                    0.0,
                )
            finally:
                self._cues.aligned = None
            words.append([segment.get("words", []) for segment in copies])
        return words
