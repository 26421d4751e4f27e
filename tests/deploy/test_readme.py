"""The README's deployment instructions stay true to the files they name."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy import REPO_ROOT, setting_variables

README = (REPO_ROOT / "README.md").read_text()


def section(title: str) -> str:
    """The text under a `##`/`###` heading, up to the next heading."""
    match = re.search(
        rf"^#+ {re.escape(title)}\n(.*?)(?=^#{{2,}} )", README, re.MULTILINE | re.DOTALL
    )
    assert match, f"README has no section {title!r}"
    return match.group(1)


def systemd_unit() -> str:
    """The example unit file of the pip/venv section."""
    match = re.search(r"```ini\n(.*?)```", section("pip, a virtual environment and systemd"), re.S)
    assert match
    return match.group(1)


def test_every_make_target_the_readme_names_exists() -> None:
    """`make <target>` in the README is a target of the Makefile."""
    targets = set(re.findall(r"^([a-z-]+):", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE))
    named = set(re.findall(r"\bmake ([a-z][a-z-]*)", README))
    assert named and named <= targets, named - targets


def test_every_deployment_file_the_readme_names_exists() -> None:
    """Paths under containers/ and nix/ that the README mentions are in the repository."""
    named = set(re.findall(r"\b((?:containers|nix)/[\w.-]*\w)", README))
    assert {"containers/Containerfile", "containers/compose.yaml"} <= named
    for path in named:
        assert (REPO_ROOT / path).is_file(), path


def test_readme_documents_every_deployment_path() -> None:
    """pip/venv + systemd, container, compose and NixOS each have a section."""
    for title in (
        "pip, a virtual environment and systemd",
        "Container (Podman or Docker)",
        "Compose",
        "NixOS",
        "Operations",
    ):
        assert section(title).strip()


def test_systemd_example_sets_only_real_settings_and_matches_the_venv_steps() -> None:
    """The unit's Environment= names are settings; its paths are those the commands create."""
    unit = systemd_unit()
    assigned = re.findall(r"([A-Z_]+)=", " ".join(re.findall(r"^Environment=(.*)$", unit, re.M)))
    assert assigned and set(assigned) <= setting_variables()
    commands = section("pip, a virtual environment and systemd")
    assert "python3 -m venv /opt/whisper-api" in commands
    assert "cp -r web /opt/whisper-api/web" in commands
    assert "MODEL_CACHE_DIR=/opt/whisper-api/models" in commands
    assert "ExecStart=/opt/whisper-api/bin/whisper-api serve" in unit
    assert "WEB_DIR=/opt/whisper-api/web" in unit and "MODEL_CACHE_DIR=/opt/" in unit
    for hardening in ("NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectSystem=strict"):
        assert hardening in unit
    timeout = int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M).group(1))  # type: ignore[union-attr]
    grace = float(re.search(r"SHUTDOWN_GRACE_S=(\d+)", unit).group(1))  # type: ignore[union-attr]
    assert timeout > grace


def test_systemd_example_passes_systemd_analyze(tmp_path: Path) -> None:
    """systemd-analyze verify accepts the unit (where systemd is installed)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    binary = shutil.which("true")
    assert binary
    unit = systemd_unit().replace("/opt/whisper-api/bin/whisper-api", binary)
    unit = re.sub(r"^(User|Group)=.*$", r"\1=root", unit, flags=re.M)  # no such user here
    path = tmp_path / "whisper-api.service"
    path.write_text(unit)
    result = subprocess.run(
        [analyze, "verify", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "whisper-api.service" not in result.stderr, result.stderr
