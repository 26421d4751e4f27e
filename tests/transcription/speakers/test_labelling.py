"""Labels on words and segments, letters, and names from reference clips."""

from __future__ import annotations

import numpy as np

from app.transcription.speakers.labelling import (
    SpeakerTimeline,
    letter_names,
    match_references,
    split_by_speaker,
)
from app.transcription.types import Segment, Word

TIMELINE = SpeakerTimeline([0.5, 1.5, 2.5, 3.5], ["A", "A", "B", "B"])


def test_letters_follow_openai() -> None:
    """Unknown speakers are A, B, … Z, then AA."""
    assert letter_names(3) == ["A", "B", "C"]
    assert letter_names(28)[-2:] == ["AA", "AB"]


def test_speaker_at_takes_the_nearest_window() -> None:
    """A time point belongs to the window whose centre is closest; outside, the last one."""
    assert TIMELINE.speaker_at(1.9) == "A"
    assert TIMELINE.speaker_at(2.1) == "B"
    assert TIMELINE.speaker_at(99.0) == "B"
    assert SpeakerTimeline([], []).speaker_at(1.0) is None


def test_segments_are_cut_where_the_speaker_changes() -> None:
    """A segment spoken by A then B becomes two, renumbered, words labelled, tokens kept first."""
    words = [
        Word(0.2, 0.8, " one", 0.9),
        Word(1.0, 1.8, " two", 0.9),
        Word(2.2, 3.0, " three", 0.9),
    ]
    segment = Segment(id=7, start=0.1, end=3.2, text=" one two three", tokens=[1, 2], words=words)
    first, second = split_by_speaker([segment], TIMELINE, keep_words=True)
    assert (first.id, first.speaker, first.text, first.start, first.end) == (
        1,
        "A",
        " one two",
        0.1,
        1.8,
    )
    assert (second.id, second.speaker, second.text, second.start, second.end) == (
        2,
        "B",
        " three",
        2.2,
        3.2,
    )
    assert first.tokens == [1, 2] and second.tokens == []
    assert [w.speaker for w in first.words or []] == ["A", "A"]


def test_words_can_be_dropped_after_labelling() -> None:
    """Without keep_words the pieces carry no words (they were only needed for labels)."""
    segment = Segment(id=1, start=0, end=1, text=" hi", words=[Word(0.1, 0.9, " hi", 0.9)])
    (piece,) = split_by_speaker([segment], TIMELINE, keep_words=False)
    assert piece.words is None and piece.speaker == "A" and piece.text == " hi"


def test_segment_without_words_takes_the_majority_speaker() -> None:
    """Without word timings a segment is labelled by who speaks most of its span."""
    (piece,) = split_by_speaker(
        [Segment(id=1, start=1.0, end=3.9, text=" x")], TIMELINE, keep_words=True
    )
    assert piece.speaker == "B"


def test_references_name_the_best_matching_cluster_once() -> None:
    """Each reference names at most one cluster, the most similar, and only above the bar."""
    centroids = np.eye(3, dtype=np.float32)
    references = np.array([[0.1, 0.99, 0], [0.0, 0.9, 0.1], [0.3, 0.3, 0.3]], dtype=np.float32)
    matched = match_references(centroids, references, ["Ann", "Bob", "Cy"])
    assert matched == {1: "Ann"}
