"""Average-linkage clustering of speaker vectors and the count hints."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest

from app.transcription.speakers import clustering
from app.transcription.speakers.clustering import SpeakerCount, cluster


def _voices(counts: list[int], spread: float = 0.25, seed: int = 0) -> npt.NDArray[np.float32]:
    """Unit vectors around one random direction per voice, voices in consecutive runs."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((len(counts), 64))
    rows = [
        centre + spread * rng.standard_normal((count, 64))
        for centre, count in zip(centres, counts, strict=True)
    ]
    vectors = np.concatenate(rows)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def _runs(labels: npt.NDArray[np.int64], counts: list[int]) -> list[set[int]]:
    bounds = np.cumsum([0, *counts])
    return [set(labels[a:b].tolist()) for a, b in itertools.pairwise(bounds)]


def test_separate_voices_get_separate_labels_in_order() -> None:
    """Three well separated voices give labels 0, 1, 2 in order of first appearance."""
    labels = cluster(_voices([10, 12, 8]), SpeakerCount())
    assert _runs(labels, [10, 12, 8]) == [{0}, {1}, {2}]


def test_one_voice_stays_one() -> None:
    """Vectors of one voice form one cluster."""
    assert set(cluster(_voices([40]), SpeakerCount()).tolist()) == {0}


def test_exact_count_is_obeyed() -> None:
    """num_speakers forces the count both ways: 3 voices into 2, 1 voice into 2."""
    assert len(set(cluster(_voices([10, 12, 8]), SpeakerCount(exact=2)).tolist())) == 2
    assert len(set(cluster(_voices([30]), SpeakerCount(exact=2)).tolist())) == 2


def test_minimum_and_maximum_bound_the_count() -> None:
    """min_speakers keeps clusters apart, max_speakers merges them."""
    assert len(set(cluster(_voices([30]), SpeakerCount(minimum=2)).tolist())) == 2
    assert len(set(cluster(_voices([10, 12, 8, 9]), SpeakerCount(maximum=2)).tolist())) == 2


def test_a_lone_stray_window_joins_its_nearest_voice() -> None:
    """A one-window cluster among many is folded into the closest real one."""
    vectors = _voices([40, 40, 1], seed=3)
    assert len(set(cluster(vectors, SpeakerCount()).tolist())) == 2


def test_many_windows_cluster_a_sample_then_assign(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_CLUSTERED windows every window still gets its voice's label."""
    monkeypatch.setattr(clustering, "MAX_CLUSTERED", 50)
    counts = [150, 100, 120]
    labels = cluster(_voices(counts), SpeakerCount())
    assert _runs(labels, counts) == [{0}, {1}, {2}]


def test_empty_and_single_inputs() -> None:
    """No window gives no label; one window gives label 0."""
    assert cluster(np.zeros((0, 8), dtype=np.float32), SpeakerCount()).tolist() == []
    assert cluster(_voices([1]), SpeakerCount()).tolist() == [0]
