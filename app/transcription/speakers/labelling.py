"""Put speaker labels on words and segments, and names on voices that match a reference.

Each time point takes the speaker of the clustering window whose centre is nearest
(within ~0.4 s of a window centre for the bundled embedder). Words take the label at
their middle; a segment is cut wherever its words change speaker, so every segment has
exactly one speaker.
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Sequence

import msgspec
import numpy as np
import numpy.typing as npt

from app.transcription.types import Segment, Word

__all__ = ["SpeakerTimeline", "letter_names", "match_references", "split_by_speaker"]

FloatArray = npt.NDArray[np.float32]
# Cosine similarity a cluster's mean voice needs with a reference clip to take its name.
# Chosen on the bench's known-speaker runs: same voices scored 0.75-0.9, others below 0.5.
REFERENCE_MATCH = 0.6
# Segments without word timings are labelled by sampling their span this often.
_SAMPLE_STEP_S = 0.2


def letter_names(count: int) -> list[str]:
    """``A``, ``B``, … ``Z``, then ``AA``, ``AB``, … as OpenAI letters unknown speakers."""
    letters = string.ascii_uppercase
    names: list[str] = []
    for index in range(count):
        name = ""
        index += 1
        while index:
            index, rest = divmod(index - 1, 26)
            name = letters[rest] + name
        names.append(name)
    return names


def match_references(
    centroids: FloatArray, references: FloatArray, names: Sequence[str]
) -> dict[int, str]:
    """Cluster number → reference name, best pairs first, each used once, above the bar."""
    if not len(centroids) or not len(references):
        return {}
    scores = centroids @ references.T
    matched: dict[int, str] = {}
    used: set[int] = set()
    for flat in np.argsort(scores, axis=None)[::-1]:
        cluster, reference = divmod(int(flat), scores.shape[1])
        if scores[cluster, reference] < REFERENCE_MATCH:
            break
        if cluster not in matched and reference not in used:
            matched[cluster] = names[reference]
            used.add(reference)
    return matched


class SpeakerTimeline:
    """Who speaks when: window centres (seconds, ascending) and their speaker names."""

    def __init__(self, centres: Sequence[float], speakers: Sequence[str]) -> None:
        self._centres = np.asarray(centres, dtype=np.float64)
        self._speakers = list(speakers)

    def speaker_at(self, seconds: float) -> str | None:
        """The speaker of the nearest window, or None when nothing was heard at all."""
        if not self._speakers:
            return None
        index = int(np.searchsorted(self._centres, seconds))
        if index == len(self._centres) or (
            index > 0 and seconds - self._centres[index - 1] <= self._centres[index] - seconds
        ):
            index -= 1
        return self._speakers[index]

    def speaker_over(self, start: float, end: float) -> str | None:
        """The speaker heard most between ``start`` and ``end``."""
        count = max(1, int((end - start) / _SAMPLE_STEP_S))
        points = np.linspace(start, end, count + 2)[1:-1] if end > start else [start]
        votes = Counter(self.speaker_at(float(point)) for point in points)
        return votes.most_common(1)[0][0]


def split_by_speaker(
    segments: Sequence[Segment], timeline: SpeakerTimeline, *, keep_words: bool
) -> list[Segment]:
    """Segments cut where the speaker changes, renumbered from 1, each with its speaker.

    Words carry their own label. Tokens stay with the first piece, since words do not
    map one-to-one onto tokens.
    """
    result: list[Segment] = []
    for segment in segments:
        for piece in _pieces(segment, timeline, keep_words=keep_words):
            result.append(msgspec.structs.replace(piece, id=len(result) + 1))
    return result


def _pieces(segment: Segment, timeline: SpeakerTimeline, *, keep_words: bool) -> list[Segment]:
    words = [
        msgspec.structs.replace(word, speaker=timeline.speaker_at((word.start + word.end) / 2))
        for word in segment.words or ()
    ]
    if not words:
        speaker = timeline.speaker_over(segment.start, segment.end)
        return [msgspec.structs.replace(segment, speaker=speaker)]
    runs: list[list[Word]] = []
    for word in words:
        if runs and runs[-1][-1].speaker == word.speaker:
            runs[-1].append(word)
        else:
            runs.append([word])
    last = len(runs) - 1
    return [
        msgspec.structs.replace(
            segment,
            start=segment.start if index == 0 else run[0].start,
            end=segment.end if index == last else run[-1].end,
            text=segment.text if last == 0 else "".join(word.word for word in run),
            tokens=segment.tokens if index == 0 else [],
            words=run if keep_words else None,
            speaker=run[0].speaker,
        )
        for index, run in enumerate(runs)
    ]
