"""Device placement, target model, cap and step-down rules (app.transcription.models.placement).

Pure decisions: a fake DeviceProbe stands in for CUDA, so the GPU branch runs anywhere.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.transcription.catalogue import MODEL_NAMES
from app.transcription.models.placement import (
    ModelCap,
    NoModelAllowedError,
    Placement,
    candidates_for_job,
    choose_cap,
    choose_placement,
    choose_target_model,
)
from tests.conftest import NoGpuProbe, make_settings
from tests.transcription.models.fakes import FakeGpuProbe, gpu_settings

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


def test_target_max_model_above_cpu_fallback_keeps_the_fallback() -> None:
    """On the CPU, MAX_MODEL only caps: a larger cap leaves CPU_FALLBACK_MODEL as target."""
    settings = make_settings(max_model="large-v3", cpu_fallback_model="medium")
    assert choose_target_model(settings, Placement("cpu", "int8"), NoGpuProbe()) == "medium"


def test_target_on_gpu_is_capped_by_what_fits() -> None:
    """On a GPU a large MAX_MODEL is still limited by the free memory."""
    settings = gpu_settings(max_model="large-v3")
    probe = FakeGpuProbe(free_mib=1500)
    assert choose_target_model(settings, Placement("cuda", "float16"), probe) == "small"


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


# ---------------------------------------------------------------- choose_cap


@pytest.mark.parametrize("probe", [NoGpuProbe(), FakeGpuProbe(devices=0)])
def test_cap_on_cpu_without_max_model_is_cpu_fallback_model(probe: Any) -> None:
    """A CPU server without MAX_MODEL is capped at CPU_FALLBACK_MODEL, as the README says."""
    settings = gpu_settings(cpu_fallback_model="small")
    cap = choose_cap(settings, choose_placement(settings, probe))
    assert cap == ModelCap("small", "CPU_FALLBACK_MODEL")


def test_cap_max_model_wins_on_cpu_in_both_directions() -> None:
    """MAX_MODEL, when set, is the cap on a CPU whether above or below CPU_FALLBACK_MODEL."""
    cpu = Placement("cpu", "int8")
    above = make_settings(max_model="large-v3", cpu_fallback_model="medium")
    below = make_settings(max_model="base", cpu_fallback_model="medium")
    assert choose_cap(above, cpu) == ModelCap("large-v3", "MAX_MODEL")
    assert choose_cap(below, cpu) == ModelCap("base", "MAX_MODEL")


def test_cap_on_gpu_is_max_model_or_none() -> None:
    """On a GPU only MAX_MODEL caps; CPU_FALLBACK_MODEL plays no part there."""
    settings = gpu_settings(cpu_fallback_model="tiny")
    placement = choose_placement(settings, FakeGpuProbe())
    assert choose_cap(settings, placement).name is None
    capped = gpu_settings(max_model="small", cpu_fallback_model="tiny")
    assert choose_cap(capped, placement) == ModelCap("small", "MAX_MODEL")


def test_cap_refusal_names_the_cap_and_its_setting() -> None:
    """The refusal message names the asked model, the cap and the variable that sets it."""
    cpu = ModelCap("medium", "CPU_FALLBACK_MODEL").refusal("large-v3")
    assert "'large-v3'" in cpu
    assert "CPU_FALLBACK_MODEL=medium" in cpu
    assert "CPU server without MAX_MODEL" in cpu
    assert "MAX_MODEL=small)" in ModelCap("small", "MAX_MODEL").refusal("turbo")


def test_candidates_under_cpu_cap_never_go_past_it() -> None:
    """With the CPU cap, the step-up candidates end at CPU_FALLBACK_MODEL."""
    settings = make_settings(cpu_fallback_model="small")
    cap = choose_cap(settings, Placement("cpu", "int8"))
    names = candidates_for_job("tiny", cap.name, needs_multilingual=True)
    assert names == ["tiny", "base", "small"]
