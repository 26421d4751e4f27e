"""Splitting a batch over a CPU model's replicas (see models/loading.py).

CTranslate2 hands each call to a free replica, so parts of a batch submitted from
threads of their own run at once; the short-clip batch (batching.py) and the
long-form pipeline (long_form.py) both split their batches this way.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["at_once", "part_bounds"]

Item = TypeVar("Item")
Result = TypeVar("Result")


def part_bounds(rows: int, parts: int) -> list[tuple[int, int]]:
    """[start, end) of up to `parts` consecutive, nearly equal parts of `rows` rows."""
    count = max(1, min(parts, rows))
    size, extra = divmod(rows, count)
    bounds: list[tuple[int, int]] = []
    start = 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        bounds.append((start, end))
        start = end
    return bounds


def at_once(work: Callable[[Item], Result], items: Sequence[Item], threads: int) -> list[Result]:
    """`work` on every item, on up to `threads` threads (in the caller's thread for one)."""
    threads = min(threads, len(items))
    if threads < 2:
        return [work(item) for item in items]
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(work, items))
