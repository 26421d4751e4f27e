"""The bench's output: the result table, the server/engine ratio lines and the JSON file."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from app.bench.measure import Row

__all__ = ["ratio_line", "table", "write_json"]


def table(rows: list[Row]) -> str:
    """The rows as the fixed-width table `whisper-api bench` prints."""
    header = (
        f"{'scenario':<9} {'system':<28} {'audio s':>8} {'wall s':>8} {'x rt':>6} "
        f"{'p50':>6} {'p95':>6} {'max':>6} {'WER':>6} {'refused':>7} {'RSS MiB':>8} "
        f"{'CPU s/audio min':>15}  context"
    )
    lines = [header, "-" * len(header)]

    def fmt(value: float | None, spec: str = ".2f") -> str:
        return "-" if value is None else format(value, spec)

    for row in rows:
        lines.append(
            f"{row.scenario:<9} {row.system:<28} {row.audio_s:>8.1f} {row.wall_s:>8.2f} "
            f"{row.speed:>6.2f} {fmt(row.p50_s):>6} {fmt(row.p95_s):>6} {fmt(row.max_s):>6} "
            f"{fmt(row.wer, '.3f'):>6} {row.refused:>7} {fmt(row.rss_mib, '.0f'):>8} "
            f"{fmt(row.cpu_per_audio_min):>15}  {row.context}"
        )
        if row.extra:
            lines.append(" " * 10 + ", ".join(f"{k}={v}" for k, v in row.extra.items()))
    return "\n".join(lines)


def ratio_line(engine: Row, server: Row) -> str:
    """Server / engine for one scenario of the same run, with both WERs and the policy."""

    def ratio(ours: float | None, theirs: float | None) -> str:
        return f"{ours / theirs:.3f}" if ours is not None and theirs else "-"

    def wer(row: Row) -> str:
        return "-" if row.wer is None else f"{100 * row.wer:.2f} %"

    return (
        f"ratio {engine.scenario:<8} server/engine wall = {ratio(server.wall_s, engine.wall_s)}"
        f"  p95 = {ratio(server.p95_s, engine.p95_s)}"
        f"  CPU = {ratio(server.cpu_s, engine.cpu_s)}"
        f"  (WER {wer(server)} vs {wer(engine)}; context {server.context})"
    )


def write_json(path: Path | None, context: dict[str, Any], rows: list[Row]) -> None:
    """Write `{"context": ..., "rows": [...]}` to `path` (nothing when it is None)."""
    if path is not None:
        path.write_text(
            json.dumps({"context": context, "rows": [asdict(r) for r in rows]}, indent=2) + "\n",
            encoding="utf-8",
        )
