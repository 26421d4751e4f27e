"""What every bench scenario measures with: the clips, the result row, WER and /proc readings.

Imports none of the scenarios, so each scenario module can import it at module level.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "AUDIO_DIR",
    "JFK",
    "LONG",
    "REPO_ROOT",
    "SHORT",
    "CpuMeter",
    "HealthProbe",
    "Row",
    "base_model_path",
    "clip_path",
    "clip_reference",
    "cpu_seconds",
    "duration",
    "mean_wer",
    "percentile",
    "rss_mib",
    "word_error_rate",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
AUDIO_DIR = REPO_ROOT.parent / "shared" / "audio"
JFK = "en_jfk.flac"
LONG = "en_longform_tedlium_120s.flac"
SHORT = [
    "en_ls-test-clean_1089-134686-0000.flac",
    "en_ls-test-clean_1089-134686-0001.flac",
    "en_ls-test-clean_1089-134691-0000.flac",
    "en_ls-test-clean_1089-134691-0001.flac",
    "en_ljspeech_LJ001-0001.wav",
    "en_ljspeech_LJ001-0002.wav",
    "en_ljspeech_LJ001-0003.wav",
    "en_ljspeech_LJ001-0004.wav",
]


@dataclass
class Row:
    """One line of the result table."""

    scenario: str
    system: str
    audio_s: float = 0.0
    wall_s: float = 0.0
    p50_s: float | None = None
    p95_s: float | None = None
    max_s: float | None = None
    wer: float | None = None
    refused: int = 0
    rss_mib: float | None = None
    cpu_s: float | None = None
    context: str = "-"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def speed(self) -> float:
        """Audio seconds per wall second."""
        return self.audio_s / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_per_audio_min(self) -> float | None:
        """CPU seconds (all threads of the process) per minute of audio."""
        if self.cpu_s is None or not self.audio_s:
            return None
        return self.cpu_s / (self.audio_s / 60)


def clip_path(name: str) -> Path:
    """The path of a clip of ../shared/audio; exits the bench when it is missing."""
    path = AUDIO_DIR / name
    if not path.is_file():
        raise SystemExit(f"bench: clip not found: {path}")
    return path


def clip_reference(name: str) -> str:
    """The reference transcript beside a clip."""
    return clip_path(name).with_suffix(".txt").read_text(encoding="utf-8")


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER after lower-casing and stripping punctuation (the clips' README's rule)."""
    import jiwer

    normalise = jiwer.Compose(
        [
            jiwer.ToLowerCase(),
            jiwer.RemovePunctuation(),
            jiwer.RemoveMultipleSpaces(),
            jiwer.Strip(),
            jiwer.ReduceToListOfListOfWords(),
        ]
    )
    return float(
        jiwer.wer(
            reference, hypothesis, reference_transform=normalise, hypothesis_transform=normalise
        )
    )


def mean_wer(names: list[str], results: list[tuple[float, str, Any]]) -> float:
    """Mean WER of (seconds, text, …) results against the references of the named clips."""
    return statistics.fmean(
        word_error_rate(clip_reference(name), text)
        for name, (_, text, _) in zip(names, results, strict=True)
    )


def duration(name: str) -> float:
    """Seconds of audio in a clip, decoded as the server decodes it."""
    from app.transcription.audio import decode_audio, duration_seconds

    return duration_seconds(decode_audio(clip_path(name).read_bytes()))


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank value at `fraction` (0..1) of `values`."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system, every thread) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int, key: str = "VmRSS") -> float:
    """A process's resident memory in MiB (`VmHWM`: its peak so far)."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def base_model_path() -> str:
    """The bundled `base` model's directory, as the service would find it (no download)."""
    from app.config import load_settings
    from app.transcription.models import ModelSources

    settings = load_settings()
    return str(ModelSources(None, settings.model_cache_dir, allow_download=False).locate("base"))


class CpuMeter:
    """CPU seconds a server process spends between start() and stop() (None: external)."""

    def __init__(self, pid: int | None) -> None:
        self._pid = pid
        self._began = 0.0

    def start(self) -> None:
        """Remember the process's CPU time now."""
        self._began = cpu_seconds(self._pid) if self._pid else 0.0

    def stop(self) -> float | None:
        """CPU seconds since start()."""
        return cpu_seconds(self._pid) - self._began if self._pid else None


class HealthProbe:
    """Polls /healthz every 20 ms in a thread and keeps the latencies."""

    def __init__(self, url: str, path: str = "/healthz") -> None:
        self._url = url
        self._path = path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.latencies_ms: list[float] = []

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import httpx

        with httpx.Client(base_url=self._url, timeout=30) as client:
            while not self._stop.wait(0.02):
                began = time.perf_counter()
                client.get(self._path)
                self.latencies_ms.append((time.perf_counter() - began) * 1000)

    @property
    def p99_ms(self) -> float:
        """99th percentile latency."""
        return round(percentile(self.latencies_ms, 0.99), 1) if self.latencies_ms else 0.0

    @property
    def max_ms(self) -> float:
        """Worst latency."""
        return round(max(self.latencies_ms), 1) if self.latencies_ms else 0.0
