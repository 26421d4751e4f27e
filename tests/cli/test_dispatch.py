"""`whisper-api COMMAND`: the dispatch in app/__main__.py and the light command-line parser."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.__main__ import main


@pytest.mark.parametrize(
    ("argv", "module"),
    [
        (["prepare-models"], "app.cli.prepare_models"),
        (["worker"], "app.cli.worker"),
    ],
)
def test_each_command_hands_over_to_its_module(
    argv: list[str], module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command runs its own module's `main` and returns its exit status."""
    monkeypatch.setattr(f"{module}.main", lambda: 7)
    assert main(argv) == 7


def test_parsing_the_command_line_loads_no_client_library() -> None:
    """Reading `whisper-api serve`'s options imports neither httpx, tqdm nor the app."""
    probe = (
        "import sys; from app.cli.parser import build_parser; "
        "build_parser().parse_args(['serve', '--port', '1']); "
        "print(sorted(m for m in ('httpx', 'tqdm', 'av', 'litestar') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
