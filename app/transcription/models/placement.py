"""Which device and numeric type models run with, and which model a job may get.

Pure functions over the settings and a `DeviceProbe`, so the CUDA branch is tested
with a fake probe on a machine without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from app.transcription.catalogue import CATALOGUE, MODEL_NAMES, model_rank, spec

__all__ = [
    "CPU_COMPUTE_TYPES",
    "CUDA_COMPUTE_TYPES",
    "CTranslate2Probe",
    "Device",
    "DeviceProbe",
    "ModelAboveCapError",
    "ModelCap",
    "ModelChoiceSettings",
    "NoModelAllowedError",
    "Placement",
    "candidates_for_job",
    "choose_cap",
    "choose_placement",
    "choose_target_model",
    "within_cap",
]

Device = Literal["cuda", "cpu"]
# Tried in order on CUDA: the first one the card supports wins.
CUDA_COMPUTE_TYPES = ("float16", "int8_float16", "float32")
CPU_COMPUTE_TYPES = ("int8", "float32")


class NoModelAllowedError(Exception):
    """No model within the cap can do what the job needs (e.g. translation)."""


class ModelAboveCapError(NoModelAllowedError):
    """A job asked for a model larger than this server allows."""


class ModelChoiceSettings(Protocol):
    """The part of `Settings` the model rules read."""

    @property
    def develop_mode(self) -> bool: ...
    @property
    def max_model(self) -> str | None: ...
    @property
    def cpu_fallback_model(self) -> str: ...
    @property
    def use_gpu_if_available(self) -> bool: ...


class DeviceProbe(Protocol):
    """What the rules need to know about the machine's accelerators."""

    def cuda_device_count(self) -> int:
        """Number of CUDA devices CTranslate2 can use."""
        ...

    def supported_compute_types(self, device: Device) -> set[str]:
        """Compute types CTranslate2 supports on that device."""
        ...

    def free_vram_mib(self) -> int | None:
        """Free memory on CUDA device 0, or None when unknown."""
        ...


class CTranslate2Probe:
    """The real probe: CTranslate2 for devices and types, NVML for free memory."""

    def cuda_device_count(self) -> int:
        """Ask CTranslate2; any failure means no usable CUDA."""
        import ctranslate2

        try:
            return int(ctranslate2.get_cuda_device_count())
        except Exception:  # a broken driver must not stop a CPU start
            return 0

    def supported_compute_types(self, device: Device) -> set[str]:
        """Ask CTranslate2 which compute types the device supports."""
        import ctranslate2

        try:
            return set(ctranslate2.get_supported_compute_types(device))
        except Exception:
            return set()

    def free_vram_mib(self) -> int | None:
        """Read free memory of GPU 0 through NVML, if the library and driver are there."""
        try:
            import pynvml

            pynvml.nvmlInit()
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(0)
                return int(pynvml.nvmlDeviceGetMemoryInfo(handle).free // (1024 * 1024))
            finally:
                pynvml.nvmlShutdown()
        except Exception:
            return None


@dataclass(frozen=True, slots=True)
class Placement:
    """Where models run and with which numeric type."""

    device: Device
    compute_type: str


def choose_placement(settings: ModelChoiceSettings, probe: DeviceProbe) -> Placement:
    """CUDA with the best supported type when allowed and present, else CPU int8."""
    if settings.use_gpu_if_available and probe.cuda_device_count() > 0:
        supported = probe.supported_compute_types("cuda")
        for compute_type in CUDA_COMPUTE_TYPES:
            if compute_type in supported:
                return Placement("cuda", compute_type)
        return Placement("cuda", "float32")
    supported = probe.supported_compute_types("cpu")
    for compute_type in CPU_COMPUTE_TYPES:
        if compute_type in supported:
            return Placement("cpu", compute_type)
    return Placement("cpu", "float32")


@dataclass(frozen=True, slots=True)
class ModelCap:
    """The largest model any job may use, and the setting that says so."""

    name: str | None  # None: no cap at all
    setting: str  # the variable an administrator changes to move the cap

    def refusal(self, asked: str) -> str:
        """The message for a job that asked for `asked`, a model above this cap."""
        reason = f"{self.setting}={self.name}"
        if self.setting == "CPU_FALLBACK_MODEL":
            reason += ", the cap of a CPU server without MAX_MODEL"
        return f"model {asked!r} is larger than this server allows ({reason})"


def choose_cap(settings: ModelChoiceSettings, placement: Placement) -> ModelCap:
    """MAX_MODEL when set; on a CPU without it CPU_FALLBACK_MODEL; on a GPU no cap.

    The CPU rule keeps a request for large-v3 on a CPU server from starting a
    multi-gigabyte download the administrator never meant to allow.
    """
    if settings.max_model is not None:
        return ModelCap(settings.max_model, "MAX_MODEL")
    if placement.device == "cpu":
        return ModelCap(settings.cpu_fallback_model, "CPU_FALLBACK_MODEL")
    return ModelCap(None, "MAX_MODEL")


def within_cap(name: str, cap: str | None) -> bool:
    """Whether `name` is no larger than `cap` (every model is, without a cap)."""
    return cap is None or model_rank(name) <= model_rank(cap)


def _largest_fitting(free_mib: int | None, cap: str | None) -> str:
    allowed = [m for m in CATALOGUE if within_cap(m.name, cap)]
    # The .en variants are no better on other languages: prefer multilingual ones.
    multilingual = [m for m in allowed if m.multilingual] or allowed
    if free_mib is None:
        return multilingual[-1].name
    fitting = [m for m in multilingual if m.vram_mib <= free_mib]
    return (fitting or multilingual[:1])[-1].name


def choose_target_model(
    settings: ModelChoiceSettings, placement: Placement, probe: DeviceProbe
) -> str:
    """The model the server aims to use for ordinary jobs; MAX_MODEL caps every rule."""
    cap = settings.max_model
    if settings.develop_mode:
        return MODEL_NAMES[0]
    if placement.device == "cuda":
        return _largest_fitting(probe.free_vram_mib(), cap)
    fallback = settings.cpu_fallback_model
    return fallback if within_cap(fallback, cap) else str(cap)


def candidates_for_job(
    target: str, cap: str | None, *, needs_multilingual: bool, translate: bool = False
) -> list[str]:
    """Models to try for one job, best first.

    The target comes first, then every smaller model (largest first), then the
    larger ones up to the cap (smallest first), so a missing model is replaced by
    the nearest one that exists. A job that translates or detects its language
    skips English-only models (and a translation skips models that cannot
    translate); NoModelAllowedError says why when the cap leaves none.
    """
    if needs_multilingual and not spec(target).multilingual:
        sibling = model_rank(target) + 1  # tiny.en -> tiny, base.en -> base, ...
        if sibling < len(CATALOGUE) and within_cap(CATALOGUE[sibling].name, cap):
            target = CATALOGUE[sibling].name
    rank = model_rank(target)
    smaller = [m.name for m in reversed(CATALOGUE[: rank + 1])]
    larger = [m.name for m in CATALOGUE[rank + 1 :] if within_cap(m.name, cap)]
    names = smaller + larger
    if needs_multilingual:
        names = [name for name in names if spec(name).multilingual]
    if translate:
        names = [name for name in names if spec(name).translates]
    if not names:
        raise NoModelAllowedError(
            f"this server is limited to models up to {cap or target}, and none of them can "
            + ("translate" if translate else "detect the language")
            + " (English-only models can neither translate nor detect a language); "
            "send language=en or ask the administrator to allow a multilingual model"
        )
    return names
