"""The bench's table, ratio lines and JSON keep the shape README and docs/benchmarks.md show."""

from __future__ import annotations

import json
from pathlib import Path

from app.bench.measure import Row, percentile
from app.bench.report import ratio_line, table, write_json

ENGINE = Row(
    "jfk", "engine", 11.0, 1.5, p50_s=1.5, max_s=1.7, wer=0.01, cpu_s=3.0,
    context="full (faster-whisper)",
)  # fmt: skip
SERVER = Row(
    "jfk", "whisper-api", 11.0, 1.2, p50_s=1.2, max_s=1.3, wer=0.0, rss_mib=400.0, cpu_s=2.0,
    context="adaptive", extra={"startup_to_ready_s": 1.234},
)  # fmt: skip


def test_table_has_the_documented_columns_and_one_line_per_row_plus_extras() -> None:
    """Header, rule, one line per row and an indented line of its extra figures."""
    lines = table([ENGINE, SERVER]).splitlines()
    assert lines[0].split() == [
        "scenario", "system", "audio", "s", "wall", "s", "x", "rt", "p50", "p95", "max", "WER",
        "refused", "RSS", "MiB", "CPU", "s/audio", "min", "context",
    ]  # fmt: skip
    assert set(lines[1]) == {"-"}
    assert lines[2].split() == [
        "jfk", "engine", "11.0", "1.50", "7.33", "1.50", "-", "1.70", "0.010", "0", "-",
        "16.36", "full", "(faster-whisper)",
    ]  # fmt: skip
    assert lines[4] == " " * 10 + "startup_to_ready_s=1.234"
    assert len(lines) == 5


def test_ratio_line_compares_server_with_engine() -> None:
    """Wall, p95 and CPU as server/engine, '-' where a side has no figure, both WERs."""
    assert ratio_line(ENGINE, SERVER) == (
        "ratio jfk      server/engine wall = 0.800  p95 = -  CPU = 0.667"
        "  (WER 0.00 % vs 1.00 %; context adaptive)"
    )


def test_json_holds_the_context_and_every_row_field(tmp_path: Path) -> None:
    """The JSON file is {"context", "rows"} with each row's fields by name."""
    path = tmp_path / "bench.json"
    write_json(path, {"cpus": 2}, [SERVER])
    written = json.loads(path.read_text(encoding="utf-8"))
    assert written["context"] == {"cpus": 2}
    assert list(written["rows"][0]) == [
        "scenario", "system", "audio_s", "wall_s", "p50_s", "p95_s", "max_s", "wer", "refused",
        "rss_mib", "cpu_s", "context", "extra",
    ]  # fmt: skip
    assert written["rows"][0]["extra"] == {"startup_to_ready_s": 1.234}


def test_percentile_takes_the_nearest_rank() -> None:
    """p50 of four values is the upper middle one; p95 the largest."""
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 3.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.95) == 4.0
