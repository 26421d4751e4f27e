"""Batched long-form transcription: faster-whisper's VAD pipeline with one encoder pass per chunk.

`AdaptiveBatchedPipeline` is faster-whisper 1.2.1's `BatchedInferencePipeline` with
these changes:

- **The adaptive context** (encoder_context.py): each batch of VAD chunks is encoded
  on its longest chunk's context; a chunk whose shortened decoding shows a failure
  sign is decoded again on the full context, which is what the stock pipeline would
  have produced.
- **Language detection shares the first batch's encoding.** The stock pipeline
  encodes the first 30 s of speech once to detect the language and again, as the
  first chunk, to decode it: a whole extra encoder pass per file (a fifth of the
  encoder's work on a 120 s talk). Here detection is deferred to the first batch:
  it is encoded once, the language is read from its first chunk's encoder output
  (the first VAD chunk: up to 30 s of speech from the start, as the stock pipeline
  looks at), the tokenizer is told, and that same output is decoded.
- **A batch is split across the model's CPU replicas** (`parallel`, see
  models/loading.py): each part is encoded and decoded on its own replica at once,
  the language of a first batch being read from its first part. Segmentation and
  word alignment then run part after part in order, as for one batch, because word
  timing carries the last speech timestamp from one chunk to the next.
- **Progress by chunk and pace** (progress.py): the batches are planned when the
  generator starts; each batch's start, each part's chunks once aligned, and each
  batch's end are told to the job's `LongFormProgress`.

Relies on faster-whisper 1.2.1 internals (pinned in pyproject.toml): `transcribe()`
calls `self.model.detect_language(features=...)` before building the tokenizer and
`generate_segment_batched()` for each batch, which calls `self.model.encode()` and
builds its prompts from the tokenizer's `sot_sequence`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import structlog
from faster_whisper import BatchedInferencePipeline

from app.transcription.encoder_context import (
    FRAMES_PER_SECOND,
    AdaptiveContextWhisperModel,
    Decoding,
    FailureThresholds,
    row_content_frames,
    shows_failure,
)
from app.transcription.progress import LongFormProgress
from app.transcription.replicas import at_once, part_bounds

__all__ = ["AdaptiveBatchedPipeline"]

log = structlog.get_logger(__name__)

# What the tokenizer is built with until the first batch has been heard.
_PLACEHOLDER_LANGUAGE = "en"


class _DeferredDetection:
    """The model as the pipeline sees it: language detection waits for the first batch."""

    def __init__(self, model: Any, pipeline: AdaptiveBatchedPipeline) -> None:
        self._model = model
        self._pipeline = pipeline

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def detect_language(self, *args: Any, features: Any = None, **kwargs: Any) -> Any:
        # The features are every chunk joined plus one dummy frame: with no speech at all
        # there is no first batch to wait for.
        if features is None or features.shape[-1] <= 1:
            return self._model.detect_language(*args, features=features, **kwargs)
        self._pipeline.detection_pending = True
        return _PLACEHOLDER_LANGUAGE, 0.0, None


class AdaptiveBatchedPipeline(BatchedInferencePipeline):  # type: ignore[misc]
    """faster-whisper's batched pipeline with the adaptive context and shared detection."""

    def __init__(
        self,
        model: Any,
        *,
        parallel: int = 1,
        progress: LongFormProgress | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        self.progress = progress
        self.whisper = model
        self.model = _DeferredDetection(model, self)
        self.parallel = max(1, parallel)
        self.detection_pending = False
        self.detected: tuple[str, float, list[tuple[str, float]]] | None = None
        # Per part of a split batch: its decoding, made on a replica's own thread.
        self._decoded: dict[int, tuple[Any, list[dict[str, Any]]]] = {}

    def transcribe(self, audio: Any, *args: Any, **kwargs: Any) -> tuple[Iterator[Any], Any]:
        """The stock `transcribe()`; the info reports the language the first batch showed."""
        segments, info = super().transcribe(audio, *args, **kwargs)
        if not self.detection_pending:
            return segments, info
        return self._reporting_language(segments, info), info

    def _reporting_language(self, segments: Iterator[Any], info: Any) -> Iterator[Any]:
        for segment in segments:
            self._report(info)
            yield segment
        self._report(info)

    def _report(self, info: Any) -> None:
        if self.detected is not None:
            info.language, info.language_probability, info.all_language_probs = self.detected

    def _batched_segments_generator(
        self,
        features: Any,
        tokenizer: Any,
        chunks_metadata: list[Any],
        batch_size: int,
        options: Any,
        log_progress: bool,
    ) -> Iterator[Any]:
        """The stock generator, its batches told to the progress first."""
        if self.progress is not None:
            self.progress.plan(chunks_metadata, batch_size)
        segments: Iterator[Any] = super()._batched_segments_generator(
            features, tokenizer, chunks_metadata, batch_size, options, log_progress
        )
        return segments

    def forward(
        self, features: np.ndarray, tokenizer: Any, chunks_metadata: list[Any], options: Any
    ) -> list[Any]:
        """The stock step for one batch, told to the progress as it starts, goes and ends."""
        if self.progress is not None:
            self.progress.batch_started()
        results = self._forward(features, tokenizer, chunks_metadata, options)
        if self.progress is not None:
            self.progress.batch_finished()
        return results

    def _forward(
        self, features: np.ndarray, tokenizer: Any, chunks_metadata: list[Any], options: Any
    ) -> list[Any]:
        """The stock step; split across the replicas where there are several."""
        bounds = part_bounds(len(features), self.parallel)
        if len(bounds) < 2:
            whole: list[Any] = super().forward(features, tokenizer, chunks_metadata, options)
            self._chunks_done(chunks_metadata)
            return whole
        parts = [features[start:end] for start, end in bounds]
        decoded = self._decode_parts(parts, tokenizer, options)
        results: list[Any] = []
        for part, decoding, (start, end) in zip(parts, decoded, bounds, strict=True):
            # The stock step on a part whose decoding is ready: it segments and aligns.
            self._decoded[id(part)] = decoding
            try:
                results += super().forward(part, tokenizer, chunks_metadata[start:end], options)
            finally:
                del self._decoded[id(part)]
            self._chunks_done(chunks_metadata[start:end])
        return results

    def _chunks_done(self, chunks_metadata: list[Any]) -> None:
        if self.progress is not None:
            self.progress.chunks_done(chunks_metadata)

    def _decode_parts(
        self, parts: list[np.ndarray], tokenizer: Any, options: Any
    ) -> list[tuple[Any, list[dict[str, Any]]]]:
        """Encode and decode every part at once, each on a thread (and replica) of its own."""
        detecting, self.detection_pending = self.detection_pending, False
        language_known = threading.Event()
        if not detecting:
            language_known.set()

        def decode(index: int, part: np.ndarray) -> tuple[Any, list[dict[str, Any]]]:
            try:
                encoder_output = self.whisper.encode(part)
                if index == 0 and detecting:
                    self._detect(encoder_output, tokenizer)
            finally:
                if index == 0:
                    language_known.set()  # also on failure: no part may wait forever
            language_known.wait()
            with _reusing(self.whisper, part, encoder_output):
                return self._decode(part, tokenizer, options)

        return at_once(lambda indexed: decode(*indexed), list(enumerate(parts)), len(parts))

    def generate_segment_batched(
        self, features: np.ndarray, tokenizer: Any, options: Any
    ) -> tuple[Any, list[dict[str, Any]]]:
        """Detect the language from the first batch's own encoding, then decode it."""
        ready = self._decoded.get(id(features))
        if ready is not None:
            return ready
        if not self.detection_pending:
            return self._decode(features, tokenizer, options)
        self.detection_pending = False
        encoder_output = self.whisper.encode(features)
        self._detect(encoder_output, tokenizer)
        with _reusing(self.whisper, features, encoder_output):
            return self._decode(features, tokenizer, options)

    def _detect(self, encoder_output: Any, tokenizer: Any) -> None:
        """Read the language from the first chunk's encoder output and tell the tokenizer."""
        first_chunk = self.whisper.model.detect_language(encoder_output)[0]
        probabilities = [(token[2:-2], float(probability)) for token, probability in first_chunk]
        language, probability = probabilities[0]
        self.detected = (language, probability, probabilities)
        tokenizer.language = tokenizer.tokenizer.token_to_id(f"<|{language}|>")
        tokenizer.language_code = language
        log.debug("long_form_language_detected", probability=round(probability, 2))

    def _decode(
        self, features: np.ndarray, tokenizer: Any, options: Any
    ) -> tuple[Any, list[dict[str, Any]]]:
        """Decode the batch on the shared shorter context; redo the chunks that failed."""
        model = self.whisper
        encoder_output, outputs = super().generate_segment_batched(features, tokenizer, options)
        if not isinstance(model, AdaptiveContextWhisperModel) or not model.is_shortened(
            encoder_output
        ):
            return encoder_output, outputs
        thresholds = FailureThresholds.of(options)
        failing = [
            index
            for index, (output, content) in enumerate(
                zip(outputs, row_content_frames(features), strict=True)
            )
            if shows_failure(
                Decoding(
                    tokens=output["tokens"],
                    text=tokenizer.decode(output["tokens"]).strip(),
                    avg_logprob=float(output["avg_logprob"]),
                    no_speech_prob=float(output["no_speech_prob"]),
                ),
                content_s=content / FRAMES_PER_SECOND,
                timestamp_begin=tokenizer.timestamp_begin,
                time_precision=model.time_precision,
                thresholds=thresholds,
            )
        ]
        model.windows_redone += len(failing)
        if failing and model.redo_failures:
            log.info("encoder_context_redo", count=len(failing), batched=True)
            with model.full_context():
                _, redone = super().generate_segment_batched(features[failing], tokenizer, options)
            for index, output in zip(failing, redone, strict=True):
                outputs[index] = output
        # Word alignment keeps the shared shorter output: every chunk's audio lies within it.
        return encoder_output, outputs


def _reusing(
    model: Any, features: np.ndarray, encoder_output: Any
) -> contextlib.AbstractContextManager[None]:
    """`model.reuse_encoding` where the model has it (a stock WhisperModel encodes again)."""
    if isinstance(model, AdaptiveContextWhisperModel):
        return model.reuse_encoding(features, encoder_output)
    return contextlib.nullcontext()
