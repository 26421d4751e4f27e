"""`python -m app.cli.prepare_models`: the bundled models joined and checked ahead of time."""

from __future__ import annotations

import stat
import tempfile
from pathlib import Path

import pytest

from app.cli.prepare_models import main


def test_joins_base_into_the_cache_readable_by_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The split base model lands in MODEL_CACHE_DIR, readable by a service user; tiny.en
    is used in place; a second run reuses the cache."""
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "models"))
    assert main() == 0
    printed = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert set(printed) == {"tiny.en", "base"}
    base = Path(printed["base"])
    assert base.parent == tmp_path / "models"
    assert stat.S_IMODE(base.stat().st_mode) == 0o755
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o644 for f in base.iterdir())
    assert (base / "model.bin").stat().st_size > 100_000_000
    made = (base / "model.bin").stat().st_mtime_ns
    assert main() == 0
    assert (base / "model.bin").stat().st_mtime_ns == made


def test_fails_with_one_line_when_the_cache_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unwritable MODEL_CACHE_DIR is an error at build time, not a silent fallback."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # the service's fallback
    monkeypatch.setenv("MODEL_CACHE_DIR", str(blocker / "models"))
    assert main() == 1
    assert "could not write MODEL_CACHE_DIR" in capsys.readouterr().err
