"""Group window vectors into speakers: average-linkage clustering on cosine similarity.

Agglomerative clustering costs O(n²) memory and about O(n³) time, so at most
``MAX_CLUSTERED`` windows, spread evenly over the audio, are clustered; every window is
then given the speaker whose mean vector it is closest to. An hour of speech (about 4,500
windows) therefore costs the same clustering as 10 minutes plus one matrix product.
"""

from __future__ import annotations

import msgspec
import numpy as np
import numpy.typing as npt

__all__ = ["MAX_CLUSTERED", "SpeakerCount", "assign_to_centroids", "centroids", "cluster"]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

MAX_CLUSTERED = 800
# Clusters whose average cosine similarity is below this stay apart. Chosen on the
# `speakers` bench scenario (docs/benchmarks.md): every conversation of voices from
# different recordings, and every single voice, came out right from 0.40 to 0.60; single
# voices start to split at 0.65. 0.55 keeps 0.1 of margin on the single-voice side, the
# commonest upload; voices that sound alike on one microphone need ~0.6 or a count hint.
DEFAULT_THRESHOLD = 0.55
# A cluster of fewer windows (under about 2.4 s of speech) is taken for noise or a turn
# boundary and joins its nearest cluster.
TINY_WINDOWS = 3


class SpeakerCount(msgspec.Struct, frozen=True, kw_only=True):
    """What the caller knows about the number of speakers."""

    exact: int | None = None
    minimum: int | None = None
    maximum: int | None = None

    def bounds(self, windows: int) -> tuple[int, int]:
        """``(fewest, most)`` clusters allowed for ``windows`` windows."""
        if self.exact is not None:
            exact = max(1, min(self.exact, windows))
            return exact, exact
        most = max(1, min(self.maximum or windows, windows))
        fewest = max(1, min(self.minimum or 1, most))
        return fewest, most


def cluster(
    vectors: FloatArray, count: SpeakerCount, threshold: float = DEFAULT_THRESHOLD
) -> IntArray:
    """A speaker number (0, 1, …) for each unit vector."""
    n = len(vectors)
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    if n <= MAX_CLUSTERED:
        return _average_linkage(vectors, count, threshold)
    picked = np.linspace(0, n - 1, MAX_CLUSTERED).round().astype(np.int64)
    sample_labels = _average_linkage(vectors[picked], count, threshold)
    # A centroid may win no window at all: renumber so labels stay 0, 1, … without gaps.
    return _renumber(assign_to_centroids(vectors, centroids(vectors[picked], sample_labels)))


def centroids(vectors: FloatArray, labels: IntArray) -> FloatArray:
    """The normalised mean vector of each label, in label order."""
    means = np.stack([vectors[labels == label].mean(axis=0) for label in range(labels.max() + 1)])
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    return np.asarray(means / np.maximum(norms, 1e-12), dtype=np.float32)


def assign_to_centroids(vectors: FloatArray, means: FloatArray) -> IntArray:
    """The label of the most similar centroid for each vector."""
    return np.asarray(np.argmax(vectors @ means.T, axis=1), dtype=np.int64)


def _average_linkage(vectors: FloatArray, count: SpeakerCount, threshold: float) -> IntArray:
    n = len(vectors)
    fewest, most = count.bounds(n)
    similarity = (vectors @ vectors.T).astype(np.float64)
    np.fill_diagonal(similarity, -np.inf)
    sizes = np.ones(n)
    owner = np.arange(n)
    clusters = n
    while clusters > fewest:
        flat = int(np.argmax(similarity))
        keep, gone = divmod(flat, n)
        if similarity[keep, gone] < threshold and clusters <= most:
            break
        _merge(similarity, sizes, keep, gone)
        owner[owner == gone] = keep
        clusters -= 1
    labels = _renumber(owner)
    if count.exact is None:
        labels = _absorb_tiny(vectors, labels, fewest)
    return labels


def _merge(
    similarity: npt.NDArray[np.float64], sizes: npt.NDArray[np.float64], keep: int, gone: int
) -> None:
    """Lance-Williams update for average linkage: the merged row is the size-weighted mean."""
    total = sizes[keep] + sizes[gone]
    row = (sizes[keep] * similarity[keep] + sizes[gone] * similarity[gone]) / total
    similarity[keep, :] = row
    similarity[:, keep] = row
    similarity[keep, keep] = -np.inf
    similarity[gone, :] = -np.inf
    similarity[:, gone] = -np.inf
    sizes[keep] = total


def _renumber(owner: IntArray) -> IntArray:
    """Labels 0, 1, … in order of each cluster's first window."""
    _, first, inverse = np.unique(owner, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return np.asarray(order[inverse], dtype=np.int64)


def _absorb_tiny(vectors: FloatArray, labels: IntArray, fewest: int) -> IntArray:
    """Fold clusters too small to be a speaker into their nearest neighbour, smallest first."""
    while labels.max() + 1 > fewest:
        sizes = np.bincount(labels)
        smallest = int(np.argmin(sizes))
        if sizes[smallest] >= TINY_WINDOWS:
            break
        means = centroids(vectors, labels)
        scores = means @ means[smallest]
        scores[smallest] = -np.inf
        labels = np.where(labels == smallest, int(np.argmax(scores)), labels)
        labels = _renumber(labels)
    return labels
