"""Stand-ins for the machine and for time, shared by the model-layer tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.config import Settings
from tests.conftest import make_settings

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


@dataclass
class FakeTimer:
    """One pending call of a FakeTime."""

    due: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        """Call it off, as asyncio's TimerHandle.cancel does."""
        self.cancelled = True


class FakeTime:
    """A monotonic clock and a `call_later` scheduler that move only when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._timers: list[FakeTimer] = []

    def __call__(self) -> float:
        """The current time in seconds."""
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        """Remember `callback` to run when the clock reaches now + delay."""
        timer = FakeTimer(self.now + delay, callback)
        self._timers.append(timer)
        return timer

    @property
    def pending(self) -> list[float]:
        """Seconds from now until each timer that is still due to fire."""
        return [timer.due - self.now for timer in self._timers if not timer.cancelled]

    def advance(self, seconds: float) -> None:
        """Move the clock on and fire, in order, every timer that has come due."""
        self.now += seconds
        while due := sorted(
            (t for t in self._timers if not t.cancelled and t.due <= self.now),
            key=lambda t: t.due,
        ):
            timer = due[0]
            self._timers.remove(timer)
            timer.callback()
