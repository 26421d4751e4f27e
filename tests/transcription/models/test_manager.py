"""ModelManager: choice per job, step-downs, shared leases and the idle unload.

No real model runs here except in the one `real_model` test: a fake loader hands out
a FakeTranscriber, FakeSources say which models exist, and FakeTime is both the
clock and the scheduler, so idle timers fire when the test moves time, never by
waiting.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from app.config import Settings
from app.transcription.models import (
    ModelAboveCapError,
    ModelManager,
    ModelUnavailableError,
    NoModelAllowedError,
    Placement,
)
from tests.conftest import FakeSources, FakeTranscriber, NoGpuProbe, fake_manager, make_settings
from tests.transcription.models.fakes import FakeGpuProbe, FakeTime, gpu_settings


@dataclass
class RecordingSources(FakeSources):
    """FakeSources that also record every locate call."""

    located: list[str] = field(default_factory=list)

    def locate(self, name: str) -> Path:
        """Record the name, then behave like FakeSources."""
        self.located.append(name)
        return super().locate(name)


@dataclass
class Rig:
    """A ModelManager on fake sources and fake time, with what it loaded."""

    manager: ModelManager
    sources: RecordingSources
    time: FakeTime
    loads: list[str]


def rig(
    settings: Settings,
    available: set[str] | frozenset[str] = frozenset({"tiny.en", "base"}),
    *,
    transcriber: Any = None,
    load_seconds: float = 0.0,
) -> Rig:
    """A manager whose loader records each load and takes `load_seconds` of fake time."""
    time = FakeTime()
    sources = RecordingSources(set(available))
    loads: list[str] = []
    handed_out = transcriber or FakeTranscriber()

    def loader(path: Path, placement: Placement) -> Any:
        loads.append(path.name)
        time.now += load_seconds
        return handed_out

    manager = ModelManager(
        settings,
        probe=NoGpuProbe(),
        sources=sources,  # type: ignore[arg-type]
        loader=loader,
        scheduler=time,
        clock=time,
    )
    return Rig(manager, sources, time, loads)


# ---------------------------------------------------------------- choice and step-down


async def test_manager_steps_down_to_largest_available_model() -> None:
    """With only tiny.en and base on disk, a multilingual job for medium runs on base."""
    manager = fake_manager(make_settings(), FakeTranscriber())
    assert manager.target == "medium"
    async with manager.acquire(needs_multilingual=True) as lease:
        assert lease.name == "base"
        assert lease.target == "medium"
        assert lease.device == "cpu"
    assert manager.loads == ["base"]  # type: ignore[attr-defined]


async def test_manager_english_job_steps_down_to_base_before_tiny_en() -> None:
    """An English job for medium uses base (largest available), not tiny.en."""
    manager = fake_manager(make_settings(), FakeTranscriber())
    async with manager.acquire(needs_multilingual=False) as lease:
        assert lease.name == "base"
        assert lease.target == "medium"


async def test_manager_steps_up_when_nothing_smaller_exists() -> None:
    """When no smaller model exists, the next larger one within MAX_MODEL is used."""
    manager = fake_manager(
        make_settings(cpu_fallback_model="small", max_model="medium"),
        FakeTranscriber(),
        available={"medium"},
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
    models = rig(make_settings())
    async with models.manager.acquire(needs_multilingual=True):
        pass
    assert models.sources.located == ["medium", "small", "base"]
    async with models.manager.acquire(needs_multilingual=True):
        pass
    assert models.sources.located == ["medium", "small", "base"]
    assert models.loads == ["base"]


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
        assert (lease.name, lease.device) == ("small", "cuda")


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


async def test_manager_looks_for_missing_models_again_when_downloads_are_on() -> None:
    """With downloads allowed, a miss is not final: the next job asks the sources again."""
    models = rig(make_settings(allow_download=True, cpu_fallback_model="small"))
    for _ in range(2):
        async with models.manager.acquire(needs_multilingual=True) as lease:
            assert lease.name == "base"
    assert models.sources.located == ["small", "base", "small"]


async def test_manager_concurrent_acquires_load_once() -> None:
    """Jobs asking for the same model at once share one load and one transcriber."""
    transcriber = FakeTranscriber()
    models = rig(make_settings(cpu_fallback_model="base"), transcriber=transcriber)
    all_in = asyncio.Event()
    seen: list[Any] = []

    async def job() -> None:
        async with models.manager.acquire(needs_multilingual=True) as lease:
            seen.append(lease.transcriber)
            if len(seen) == 5:
                all_in.set()
            await all_in.wait()  # every lease is held at the same time

    await asyncio.gather(*(job() for _ in range(5)))
    assert models.loads == ["base"]
    assert seen == [transcriber] * 5


async def test_manager_measures_load_time_on_its_clock() -> None:
    """load_seconds holds what the injected clock says a load took; the log says it too."""
    models = rig(make_settings(cpu_fallback_model="base"), load_seconds=2.5)
    with capture_logs() as logs:
        async with models.manager.acquire(needs_multilingual=True):
            pass
    assert models.manager.load_seconds == {"base": 2.5}
    assert models.manager.last_loaded == "base"
    loaded = [entry for entry in logs if entry["event"] == "model_loaded"]
    assert [(entry["model"], entry["seconds"]) for entry in loaded] == [("base", 2.5)]


async def test_manager_logs_the_compute_type_actually_loaded() -> None:
    """When the loader fell back to another compute type, model_loaded names that one."""

    class SteppedDown(FakeTranscriber):
        compute_type = "float32"

    models = rig(make_settings(cpu_fallback_model="base"), transcriber=SteppedDown())
    with capture_logs() as logs:
        async with models.manager.acquire(needs_multilingual=True):
            pass
    loaded = [entry for entry in logs if entry["event"] == "model_loaded"]
    assert [entry["compute_type"] for entry in loaded] == ["float32"]
    assert models.manager.placement.compute_type == "int8"


# ---------------------------------------------------------------- the CPU cap (issue 15)


@pytest.mark.parametrize("asked", ["large-v3", "turbo", "distil-large-v3", "large-v1"])
def test_cpu_server_without_max_model_refuses_models_above_cpu_fallback(asked: str) -> None:
    """On a CPU without MAX_MODEL, a model above CPU_FALLBACK_MODEL is refused, cap named."""
    manager = fake_manager(make_settings(), FakeTranscriber())
    with pytest.raises(ModelAboveCapError, match="CPU_FALLBACK_MODEL=medium"):
        manager.requested_model(asked)
    assert manager.requested_model("medium") == "medium"
    assert manager.requested_model("small.en") == "small.en"
    assert manager.cap == "medium"


def test_cpu_cap_list_and_offline_list_agree_with_requested_model() -> None:
    """names_within_cap and allowed_models end at the CPU cap that requested_model enforces."""
    everything = {"tiny.en", "base", "small", "medium", "large-v3"}
    manager = fake_manager(
        make_settings(cpu_fallback_model="small"), FakeTranscriber(), available=everything
    )
    names = manager.names_within_cap()
    assert names[-1] == "small"
    assert manager.allowed_models() == ["tiny.en", "base", "small"]
    for name in names:
        assert manager.requested_model(name) == name
    with pytest.raises(ModelAboveCapError):
        manager.requested_model("medium.en")


def test_max_model_lifts_the_cpu_cap() -> None:
    """An explicit MAX_MODEL above CPU_FALLBACK_MODEL lets a CPU job ask for that model."""
    manager = fake_manager(make_settings(max_model="large-v3"), FakeTranscriber())
    assert manager.requested_model("large-v3") == "large-v3"
    assert manager.target == "medium"
    assert manager.names_within_cap()[-1] == "large-v3"


def test_gpu_server_without_max_model_has_no_cap() -> None:
    """On a GPU without MAX_MODEL every model may be asked for (only VRAM picks the target)."""
    manager = fake_manager(gpu_settings(), FakeTranscriber(), probe=FakeGpuProbe(free_mib=1500))
    assert manager.cap is None
    assert manager.requested_model("large-v3") == "large-v3"
    assert manager.target == "small"


async def test_cpu_cap_never_looks_for_a_model_past_it() -> None:
    """With only models above the CPU cap on offer, nothing past the cap is even located."""
    models = rig(
        make_settings(allow_download=True, cpu_fallback_model="small"),
        available={"medium", "large-v3"},
    )
    with pytest.raises(ModelUnavailableError):
        async with models.manager.acquire(needs_multilingual=True):
            pass
    assert models.sources.located == ["small", "base", "tiny"]
    assert models.loads == []


# ---------------------------------------------------------------- idle unload


async def test_manager_unloads_when_the_idle_timer_runs_out() -> None:
    """UNLOAD_MODEL_AFTER_S=30 unloads the model 30 s after its last release, not before."""
    models = rig(make_settings(cpu_fallback_model="base", unload_model_after_s=30))
    async with models.manager.acquire(needs_multilingual=True):
        assert models.time.pending == []  # no timer while the model is held
    assert models.time.pending == [30]
    models.time.advance(29.9)
    assert models.manager.loaded_models == ["base"]
    with capture_logs() as logs:
        models.time.advance(0.1)
    assert models.manager.loaded_models == []
    assert [entry["event"] for entry in logs] == ["model_unloaded"]


async def test_manager_never_unloads_a_model_in_use() -> None:
    """A job that takes the model before the timer fires cancels it; holding it long is safe."""
    models = rig(make_settings(cpu_fallback_model="base", unload_model_after_s=5))
    manager = models.manager
    async with manager.acquire(needs_multilingual=True):
        pass
    models.time.advance(4)
    async with manager.acquire(needs_multilingual=True):
        assert models.time.pending == []
        models.time.advance(3600)
        assert manager.loaded_models == ["base"]
    assert models.time.pending == [5]  # the countdown starts again at the release
    models.time.advance(5)
    assert manager.loaded_models == []
    assert models.loads == ["base"]


async def test_manager_keeps_model_while_any_of_several_leases_is_held() -> None:
    """Releasing one of two overlapping leases starts no timer; the last release does."""
    models = rig(make_settings(cpu_fallback_model="base", unload_model_after_s=1))
    first = models.manager.acquire(needs_multilingual=True)
    second = models.manager.acquire(needs_multilingual=False)
    await first.__aenter__()
    await second.__aenter__()
    await first.__aexit__(None, None, None)
    assert models.time.pending == []
    models.time.advance(60)
    assert models.manager.loaded_models == ["base"]
    await second.__aexit__(None, None, None)
    models.time.advance(1)
    assert models.manager.loaded_models == []


async def test_manager_unload_after_zero_unloads_right_after_release() -> None:
    """UNLOAD_MODEL_AFTER_S=0 sets a zero-delay timer at release: no waiting, no polling."""
    models = rig(make_settings(cpu_fallback_model="base", unload_model_after_s=0))
    async with models.manager.acquire(needs_multilingual=True):
        assert models.manager.loaded_models == ["base"]
    assert models.time.pending == [0]
    models.time.advance(0)
    assert models.manager.loaded_models == []


async def test_manager_unload_after_zero_keeps_the_model_for_a_queued_job() -> None:
    """With 0, a job that takes the model before the loop runs the timer needs no reload."""
    models = rig(make_settings(cpu_fallback_model="base", unload_model_after_s=0))
    async with models.manager.acquire(needs_multilingual=True):
        pass
    async with models.manager.acquire(needs_multilingual=True):
        models.time.advance(0)
        assert models.manager.loaded_models == ["base"]
    models.time.advance(0)
    assert models.manager.loaded_models == []
    assert models.loads == ["base"]


async def test_manager_default_scheduler_is_the_running_loop() -> None:
    """Without an injected scheduler, UNLOAD_MODEL_AFTER_S=0 unloads within a few loop turns."""
    manager = fake_manager(
        make_settings(cpu_fallback_model="base", unload_model_after_s=0), FakeTranscriber()
    )
    async with manager.acquire(needs_multilingual=True):
        pass
    for _ in range(10):  # loop turns, not wall-clock time
        if not manager.loaded_models:
            break
        await asyncio.sleep(0)
    assert manager.loaded_models == []


async def test_manager_unload_after_none_never_unloads() -> None:
    """Without UNLOAD_MODEL_AFTER_S no timer is set and the model stays loaded."""
    models = rig(make_settings(cpu_fallback_model="base"))
    async with models.manager.acquire(needs_multilingual=True):
        pass
    assert models.time.pending == []
    models.time.advance(86400)
    assert models.manager.loaded_models == ["base"]


async def test_manager_loads_again_after_unload() -> None:
    """The next acquire after an idle unload loads the model again."""
    models = rig(make_settings(cpu_fallback_model="base", unload_model_after_s=0))
    async with models.manager.acquire(needs_multilingual=True):
        pass
    models.time.advance(0)
    async with models.manager.acquire(needs_multilingual=True) as lease:
        assert lease.name == "base"
        assert models.manager.loaded_models == ["base"]
    assert models.loads == ["base", "base"]


async def test_manager_close_drops_every_model_and_its_timer() -> None:
    """close() unloads all models and cancels their pending unload timers."""
    models = rig(make_settings(cpu_fallback_model="base", unload_model_after_s=30))
    async with models.manager.acquire(needs_multilingual=False):
        pass
    assert models.time.pending == [30]
    await models.manager.close()
    assert models.manager.loaded_models == []
    assert models.time.pending == []


def _rss_mib() -> float:
    """This process's resident memory in MiB."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS line")


@pytest.mark.real_model
async def test_idle_unload_of_the_real_base_model_gives_its_memory_back() -> None:
    """The real base model, unloaded by its idle timer, gives most of its RSS back."""
    time = FakeTime()
    manager = ModelManager(
        make_settings(cpu_fallback_model="base", unload_model_after_s=60),
        probe=NoGpuProbe(),
        scheduler=time,
    )
    before_mib = _rss_mib()
    async with manager.acquire(needs_multilingual=True):
        assert manager.loaded_models == ["base"]  # no lease kept here: it would hold the model
    loaded_mib = _rss_mib()
    time.advance(60)
    assert manager.loaded_models == []
    # Nothing is loaded any more: close() only waits for the trim the unload started.
    await manager.close()
    figures = (before_mib, loaded_mib, _rss_mib())
    # The exact figures belong in `make bench`; here: most of what the load took comes back.
    assert loaded_mib - before_mib > 50, figures
    assert figures[2] - before_mib < (loaded_mib - before_mib) / 2, figures
