"""The speaker stage: speech regions → cell vectors → clustered windows → labelled segments.

Framework-free and synchronous: the worker runs it in its inference thread, after the
transcription. Vectors and reference clips live only in this call's local variables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import msgspec
import numpy as np
import numpy.typing as npt

from app.transcription.speakers.clustering import (
    DEFAULT_THRESHOLD,
    SpeakerCount,
    centroids,
    cluster,
)
from app.transcription.speakers.embedders import SpeakerEmbedder
from app.transcription.speakers.labelling import (
    SpeakerTimeline,
    letter_names,
    match_references,
    split_by_speaker,
)
from app.transcription.speakers.regions import (
    SAMPLE_RATE,
    Cell,
    Window,
    cell_audio,
    cut_cells,
    pair_windows,
    speech_regions,
)
from app.transcription.types import Transcript

__all__ = [
    "KnownSpeaker",
    "SpeakerRequest",
    "SpeakerTurn",
    "WindowVectors",
    "embed_windows",
    "label_speakers",
    "speaker_turns",
    "turns_from_vectors",
]

FloatArray = npt.NDArray[np.float32]
# Cells start every 0.8 s: back to back for the bundled embedder's 0.82 s cells.
CELL_HOP = int(0.8 * SAMPLE_RATE)


@dataclass(frozen=True)
class KnownSpeaker:
    """A name and a clip of that person's voice (16 kHz float32)."""

    name: str
    audio: FloatArray


@dataclass(frozen=True)
class SpeakerRequest:
    """What the caller asked of the speaker stage."""

    count: SpeakerCount = field(default_factory=SpeakerCount)
    known: tuple[KnownSpeaker, ...] = ()
    # Keep word timings on the result (they were asked for, not only needed for labels).
    keep_words: bool = True
    threshold: float = DEFAULT_THRESHOLD


class SpeakerTurn(msgspec.Struct, frozen=True):
    """One window's time span and speaker label: the stage's view before words are labelled."""

    start: float
    end: float
    speaker: str


class WindowVectors(NamedTuple):
    """The clustering windows of some audio and one unit vector each."""

    windows: list[Window]
    vectors: FloatArray


def embed_windows(audio: FloatArray, embedder: SpeakerEmbedder) -> WindowVectors:
    """Speech regions cut into cells, embedded once each, and paired into window vectors."""
    cells = cut_cells(speech_regions(audio), len(audio), embedder.cell_samples, CELL_HOP)
    windows = pair_windows(cells)
    if not windows:
        return WindowVectors([], np.zeros((0, 0), dtype=np.float32))
    cell_vectors = embedder.embed(cell_audio(audio, cells))
    return WindowVectors(windows, _window_vectors(cell_vectors, windows))


def turns_from_vectors(
    found: WindowVectors, request: SpeakerRequest, embedder: SpeakerEmbedder
) -> list[SpeakerTurn]:
    """Cluster the window vectors and name the clusters: each window with its speaker."""
    if not found.windows:
        return []
    labels = cluster(found.vectors, request.count, request.threshold)
    names = _names(found.vectors, labels, request.known, embedder)
    return [
        SpeakerTurn(window.start_s, window.end_s, names[label])
        for window, label in zip(found.windows, labels, strict=True)
    ]


def speaker_turns(
    audio: FloatArray, request: SpeakerRequest, embedder: SpeakerEmbedder
) -> list[SpeakerTurn]:
    """Each clustering window of the audio with its speaker label, in time order."""
    return turns_from_vectors(embed_windows(audio, embedder), request, embedder)


def label_speakers(
    audio: FloatArray, transcript: Transcript, request: SpeakerRequest, embedder: SpeakerEmbedder
) -> Transcript:
    """The transcript with a speaker on every segment (and word), segments cut at changes."""
    turns = speaker_turns(audio, request, embedder)
    if not turns and transcript.segments:
        # Nothing the voice detector calls speech: one unnamed voice said it all.
        turns = [SpeakerTurn(0.0, transcript.duration, letter_names(1)[0])]
    timeline = SpeakerTimeline(
        [(turn.start + turn.end) / 2 for turn in turns], [turn.speaker for turn in turns]
    )
    segments = split_by_speaker(transcript.segments, timeline, keep_words=request.keep_words)
    return msgspec.structs.replace(transcript, segments=segments)


def _window_vectors(cell_vectors: FloatArray, windows: list[Window]) -> FloatArray:
    """Each window's vector: the normalised mean of its cells' vectors."""
    summed = np.stack([cell_vectors[w.first : w.last + 1].mean(axis=0) for w in windows])
    norms = np.linalg.norm(summed, axis=1, keepdims=True)
    return np.asarray(summed / np.maximum(norms, 1e-12), dtype=np.float32)


def _reference_vector(clip: FloatArray, embedder: SpeakerEmbedder) -> FloatArray:
    """One unit vector for a whole reference clip: the mean over its speech cells."""
    cells = cut_cells(speech_regions(clip), len(clip), embedder.cell_samples, CELL_HOP)
    if not cells:
        cells = [Cell(0, embedder.cell_samples, 0)]
    mean = embedder.embed(cell_audio(clip, cells)).mean(axis=0)
    return np.asarray(mean / max(float(np.linalg.norm(mean)), 1e-12), dtype=np.float32)


def _names(
    vectors: FloatArray,
    labels: npt.NDArray[np.int64],
    known: tuple[KnownSpeaker, ...],
    embedder: SpeakerEmbedder,
) -> list[str]:
    """A name per cluster: a matching reference's, else the next letter in order of
    first appearance."""
    count = int(labels.max()) + 1
    matched: dict[int, str] = {}
    if known:
        references = np.stack([_reference_vector(speaker.audio, embedder) for speaker in known])
        matched = match_references(
            centroids(vectors, labels), references, [speaker.name for speaker in known]
        )
    letters = iter(letter_names(count))
    return [matched.get(label) or next(letters) for label in range(count)]
