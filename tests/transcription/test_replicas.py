"""Splitting a batch over model replicas."""

from __future__ import annotations

import threading

import pytest

from app.transcription.replicas import at_once, part_bounds


@pytest.mark.parametrize(
    ("rows", "parts", "bounds"),
    [
        (4, 2, [(0, 2), (2, 4)]),
        (5, 2, [(0, 3), (3, 5)]),
        (3, 4, [(0, 1), (1, 2), (2, 3)]),
        (4, 1, [(0, 4)]),
        (1, 0, [(0, 1)]),
    ],
)
def test_part_bounds_cover_every_row_once_in_order(
    rows: int, parts: int, bounds: list[tuple[int, int]]
) -> None:
    """Parts are consecutive, nearly equal, never empty and never more than the rows."""
    assert part_bounds(rows, parts) == bounds


def test_at_once_keeps_order_and_uses_a_thread_per_item() -> None:
    """Results come back in the items' order, each item worked on a thread of its own."""
    barrier = threading.Barrier(3, timeout=5)  # passes only if all three run together

    def work(item: int) -> tuple[int, int]:
        barrier.wait()
        return item * 10, threading.get_ident()

    results = at_once(work, [1, 2, 3], threads=3)
    assert [value for value, _ in results] == [10, 20, 30]
    assert len({ident for _, ident in results}) == 3


def test_at_once_with_one_thread_runs_in_the_callers_thread() -> None:
    """One thread (one replica) means no pool: the caller's thread does the work in order."""
    caller = threading.get_ident()
    assert at_once(lambda item: (item, threading.get_ident()), [1, 2], threads=1) == [
        (1, caller),
        (2, caller),
    ]
