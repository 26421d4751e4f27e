"""Running the speaker stage for a job: the embedder loaded once, reference clips decoded.

Blocking; the worker calls it in its inference thread after the transcription. Nothing
about a voice outlives the call: vectors are local, and the worker drops the job's
reference clips once this returns.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import numpy.typing as npt
import structlog

from app.transcription.audio import AudioDecodeError, decode_audio, probe_upload
from app.transcription.speakers import (
    KnownSpeaker,
    SpeakerCount,
    SpeakerEmbedder,
    SpeakerRequest,
    label_speakers,
    load_embedder,
)
from app.transcription.types import SpeakerOptions, Transcript

__all__ = ["REFERENCE_MAX_S", "ReferenceAudioError", "SpeakerStage", "check_references"]

log = structlog.get_logger(__name__)

# OpenAI takes reference clips of 2 to 10 seconds; a little more does no harm.
REFERENCE_MAX_S = 30.0


class ReferenceAudioError(AudioDecodeError):
    """A known speaker's reference clip is not usable audio (a 400 naming the field)."""

    code = "invalid_speaker_reference"
    param = "known_speaker_references[]"


def check_references(speakers: SpeakerOptions) -> None:
    """Prove each reference clip is audio within REFERENCE_MAX_S (blocking: run it in a thread)."""
    for index, clip in enumerate(speakers.known_speaker_references):
        try:
            probe_upload(clip, raw_pcm=False, max_seconds=REFERENCE_MAX_S)
        except AudioDecodeError as exc:
            raise ReferenceAudioError(
                f"known_speaker_references[] entry {index}: {exc.message}"
            ) from None


class SpeakerStage:
    """Labels transcripts with speakers; the embedder is loaded on the first job that asks."""

    def __init__(self, model_path: str | None = None) -> None:
        self._model_path = model_path or None
        self._embedder: SpeakerEmbedder | None = None
        self._lock = threading.Lock()

    def embedder(self) -> SpeakerEmbedder:
        """The embedder (SpeakerModelError when it is missing or altered)."""
        with self._lock:
            if self._embedder is None:
                began = time.perf_counter()
                self._embedder = load_embedder(self._model_path)
                log.info(
                    "speaker_model_loaded",
                    bundled=self._model_path is None,
                    load_s=round(time.perf_counter() - began, 3),
                )
            return self._embedder

    def __call__(
        self, audio: npt.NDArray[np.float32], transcript: Transcript, options: SpeakerOptions
    ) -> Transcript:
        """The transcript with speakers on segments and words (see label_speakers)."""
        embedder = self.embedder()
        began = time.perf_counter()
        known = tuple(
            KnownSpeaker(name, decode_audio(clip, max_seconds=REFERENCE_MAX_S))
            for name, clip in zip(
                options.known_speaker_names, options.known_speaker_references, strict=True
            )
        )
        request = SpeakerRequest(
            count=SpeakerCount(
                exact=options.num_speakers,
                minimum=options.min_speakers,
                maximum=options.max_speakers,
            ),
            known=known,
            keep_words=options.keep_words,
        )
        labelled = label_speakers(audio, transcript, request, embedder)
        log.info(
            "speaker_stage_finished",
            speakers=len({segment.speaker for segment in labelled.segments}),
            segment_count=len(labelled.segments),
            references=len(known),
            stage_s=round(time.perf_counter() - began, 3),
        )
        return labelled
