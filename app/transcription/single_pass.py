"""One encoder pass per window: language detection reuses the first window's encoding.

faster-whisper 1.2.1's `transcribe()` with `language=None` encodes the first 30 s
window in `detect_language()` and then again in `generate_segments()`; on a CPU that
second encoding is a large share of a short request. `SinglePassWhisperModel`
computes the first window's encoder output exactly as `generate_segments()` would,
detects the language from it and hands the same output to `generate_segments()`,
which already accepts an `encoder_output` for its first window. Everything else is
faster-whisper's own code, so the decoded segments equal `transcribe()`'s.

This relies on faster-whisper internals; the version is pinned in pyproject.toml and
tests/transcription/test_single_pass.py checks the equality on real audio.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from faster_whisper.audio import pad_or_trim

from app.transcription.encoder_context import AdaptiveContextWhisperModel

__all__ = ["SinglePassWhisperModel"]


class SinglePassWhisperModel(AdaptiveContextWhisperModel):
    """A WhisperModel whose language detection shares the first window's encoder pass.

    The encoding is the adaptive one (encoder_context.py): detection and decoding read
    the same, possibly shortened, encoder output.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (the full feature matrix, its first window's encoder output), per inference thread.
        self._first_window = threading.local()

    def first_window_encoding(self, features: np.ndarray) -> Any:
        """Encode the first window the way generate_segments() does for seek 0."""
        content_frames = features.shape[-1] - 1
        size = min(self.feature_extractor.nb_max_frames, content_frames)
        return self.encode(pad_or_trim(features[:, :size]))

    def detect_language(
        self,
        audio: np.ndarray | None = None,
        features: np.ndarray | None = None,
        vad_filter: bool = False,
        vad_parameters: Any = None,
        language_detection_segments: int = 1,
        language_detection_threshold: float = 0.5,
    ) -> tuple[str, float, list[tuple[str, float]]]:
        """Detect from the first window's encoding and keep it for the decoding pass."""
        whole = None if features is None else features.base
        single_window_call = (
            audio is None
            and features is not None
            and language_detection_segments == 1
            and isinstance(whole, np.ndarray)
            and whole.ndim == 2
            and features.shape == whole.shape  # transcribe() passes features[..., 0:]
        )
        if not single_window_call:
            return super().detect_language(  # type: ignore[no-any-return]
                audio,
                features,
                vad_filter,
                vad_parameters,
                language_detection_segments,
                language_detection_threshold,
            )
        assert whole is not None
        encoder_output = self.first_window_encoding(whole)
        self._first_window.value = (whole, encoder_output)
        results = self.model.detect_language(encoder_output)[0]
        all_language_probs = [(token[2:-2], prob) for (token, prob) in results]
        language, probability = all_language_probs[0]
        return language, probability, all_language_probs

    def generate_segments(
        self,
        features: np.ndarray,
        tokenizer: Any,
        options: Any,
        log_progress: Any,
        encoder_output: Any = None,
    ) -> Any:
        """Use the encoder output kept by detect_language() for these very features."""
        kept = getattr(self._first_window, "value", None)
        self._first_window.value = None
        if encoder_output is None and kept is not None and kept[0] is features:
            encoder_output = kept[1]
        return super().generate_segments(features, tokenizer, options, log_progress, encoder_output)
