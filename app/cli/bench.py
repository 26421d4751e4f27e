"""`whisper-api bench`: the benchmarks and studies of `app.bench`, imported only when asked for."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str]) -> int:
    """Run the benchmark command line with `argv` (see `whisper-api bench --help`)."""
    from app.bench.runner import main as bench_main

    return bench_main(list(argv))
