"""Settings derived from others: how the cores are split between the live and batch models."""

from __future__ import annotations

import pytest

from app.config import Settings


def test_the_cores_are_split_between_the_live_and_the_batch_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CPU_THREADS=0: the cores LIVE_CPU_THREADS (half by default) leaves; all without live."""
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert (Settings().live_threads, Settings().batch_threads) == (4, 4)
    assert Settings(live_cpu_threads=2).batch_threads == 6
    assert Settings(max_live_sessions=0).batch_threads == 8
    assert Settings(cpu_threads=8, live_cpu_threads=2).batch_threads == 8
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert (Settings().live_threads, Settings().batch_threads) == (1, 1)
