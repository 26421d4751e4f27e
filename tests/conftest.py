"""Shared fixtures: settings, fake models, real bundled models, and apps built on them."""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.clock import Clock
from app.composition import build_service
from app.config import Settings, load_settings
from app.service import TranscriptionService
from app.transcription.engine import (
    JobCancelledError,
    ProgressCallback,
    SegmentCallback,
    StopCheck,
)
from app.transcription.models import DeviceProbe, ModelManager, Placement
from app.transcription.types import (
    LanguageCandidate,
    LanguageDetection,
    Segment,
    TranscribeOptions,
    Transcript,
    Word,
)
from tests.server_process import Server, served, start_server

if TYPE_CHECKING:
    import openai

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_AUDIO = REPO_ROOT.parent / "shared" / "audio"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Under CI (`CI` set) a skipped test fails: nothing the suite checks may pass unseen."""
    report = yield
    if report.skipped and os.environ.get("CI") and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, which CI does not allow: {reason}"
    return report


def shared_clip(name: str) -> Path:
    """A clip from ../shared/audio; skipped where the folder is missing (a failure under CI)."""
    path = SHARED_AUDIO / name
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    return path


def reference_text(name: str) -> str:
    """The reference transcript beside a shared clip."""
    return shared_clip(name).with_suffix(".txt").read_text(encoding="utf-8")


def make_settings(**overrides: Any) -> Settings:
    """Settings for tests: no log file, no preload, no downloads, unless overridden."""
    base: dict[str, Any] = {
        "log_file": "",
        "load_model_on_startup": False,
        "allow_download": False,
        "use_gpu_if_available": False,
    }
    base.update(overrides)
    return load_settings({}, **base)


class NoGpuProbe:
    """A machine without CUDA."""

    def cuda_device_count(self) -> int:
        """No CUDA devices."""
        return 0

    def supported_compute_types(self, device: str) -> set[str]:
        """What CTranslate2 reports on a plain x86 CPU."""
        return {"int8", "int8_float32", "float32"} if device == "cpu" else set()

    def free_vram_mib(self) -> int | None:
        """No GPU memory."""
        return None


@dataclass
class FakeTranscriber:
    """Answers instantly (or when released) with a canned transcript; records its calls."""

    text: str = "hello world"
    language: str = "en"
    gate: threading.Event | None = None
    fail_with: Exception | None = None
    # More than one: the text is spread over this many segments of equal length.
    segment_count: int = 1
    calls: list[TranscribeOptions] = field(default_factory=list)
    audio_seen: list[int] = field(default_factory=list)

    def transcribe(
        self,
        audio: np.ndarray[Any, Any],
        options: TranscribeOptions,
        on_progress: ProgressCallback,
        should_stop: StopCheck,
        on_segment: SegmentCallback | None = None,
    ) -> Transcript:
        """Return the canned transcript, honouring the gate, failures and cancellation."""
        self.calls.append(options)
        self.audio_seen.append(len(audio))
        duration = len(audio) / 16000
        segments = self._segments(duration, options.times_words)
        if on_segment is not None:
            on_segment(segments[0])
        on_progress(0.5)
        if self.gate is not None:
            while not self.gate.wait(0.01):
                if should_stop():
                    raise JobCancelledError
        if should_stop():
            raise JobCancelledError
        if self.fail_with is not None:
            raise self.fail_with
        for segment in segments[1:]:
            if on_segment is not None:
                on_segment(segment)
        on_progress(1.0)
        return Transcript(
            text="".join(segment.text for segment in segments).strip(),
            language=options.language or self.language,
            language_probability=0.99,
            duration=duration,
            segments=segments,
        )

    def detect_language(
        self, audio: np.ndarray[Any, Any], should_stop: StopCheck
    ) -> LanguageDetection:
        """Say the fake's language with 0.9, and two runners-up."""
        self.audio_seen.append(len(audio))
        if should_stop():
            raise JobCancelledError
        if self.fail_with is not None:
            raise self.fail_with
        others = [code for code in ("en", "de", "fr") if code != self.language][:2]
        candidates = [LanguageCandidate(self.language, 0.9)] + [
            LanguageCandidate(code, 0.05) for code in others
        ]
        return LanguageDetection(
            language=self.language, probability=0.9, candidates=candidates, speech_seconds=1.0
        )

    def _segments(self, duration: float, with_words: bool) -> list[Segment]:
        """The text split into `segment_count` equal segments, with evenly timed words if asked."""
        words = self.text.split()
        count = max(1, min(self.segment_count, len(words)))
        per_segment = -(-len(words) // count)
        chunks = [words[i : i + per_segment] for i in range(0, len(words), per_segment)] or [[]]
        span = duration / len(chunks)
        segments = []
        for index, chunk in enumerate(chunks):
            start = index * span
            timed = None
            if with_words:
                step = span / max(1, len(chunk))
                timed = [
                    Word(start + i * step, start + (i + 1) * step, " " + word, 0.9)
                    for i, word in enumerate(chunk)
                ]
            text = "".join(" " + word for word in chunk)
            segments.append(
                Segment(id=index, start=start, end=start + span, text=text, words=timed)
            )
        return segments


@dataclass
class FakeSources:
    """Model sources where only the named models exist."""

    available: set[str]

    def locate(self, name: str) -> Path:
        """A made-up path for available models."""
        from app.transcription.models import ModelUnavailableError

        if name not in self.available:
            raise ModelUnavailableError(name)
        return Path("/models") / name

    def is_available_offline(self, name: str) -> bool:
        """Whether the model is one of the available ones."""
        return name in self.available


def fake_manager(
    settings: Settings,
    transcriber: FakeTranscriber,
    *,
    available: set[str] | None = None,
    probe: DeviceProbe | None = None,
    loader: Callable[[Path, Placement], Any] | None = None,
) -> ModelManager:
    """A ModelManager whose loader hands out `transcriber` (or calls `loader`) for any
    available model; `manager.loads` lists the models it loaded."""
    loaded: list[str] = []

    def load(path: Path, placement: Placement) -> Any:
        loaded.append(path.name)
        return transcriber if loader is None else loader(path, placement)

    manager = ModelManager(
        settings,
        probe=probe or NoGpuProbe(),
        sources=FakeSources(available if available is not None else {"tiny.en", "base"}),  # type: ignore[arg-type]
        loader=load,
    )
    manager.loads = loaded  # type: ignore[attr-defined]
    return manager


def build_fake_app(
    transcriber: FakeTranscriber,
    *,
    clock: Clock | None = None,
    available: set[str] | None = None,
    loader: Callable[[Path, Placement], Any] | None = None,
    **overrides: Any,
) -> tuple[Litestar, TranscriptionService]:
    """An app and its service on `transcriber` (a custom loader where given), with settings
    overrides."""
    settings = make_settings(**overrides)
    manager = fake_manager(settings, transcriber, available=available, loader=loader)
    service = build_service(settings, manager, clock=clock)
    return create_app(settings, service=service), service


def wav_bytes(seconds: float = 1.0, rate: int = 16000) -> bytes:
    """A small valid WAV file of a quiet tone, made in memory."""
    import io
    import wave

    t = np.arange(int(seconds * rate)) / rate
    samples = (0.1 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


class FromPeer:
    """The app as reached from TCP peer `host` (Litestar's test client says "testclient")."""

    def __init__(self, app: Litestar, host: str) -> None:
        self.app = app
        self.host = host

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Pass every message on, with the chosen client address on requests."""
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "client": (self.host, 40000)}
        await self.app(scope, receive, send)


def client_from(app: Litestar, host: str) -> AsyncTestClient[Any]:
    """A test client whose requests come from the TCP peer `host`."""
    return AsyncTestClient(app=FromPeer(app, host))  # type: ignore[arg-type]


@pytest.fixture
def fake_transcriber() -> FakeTranscriber:
    """A fresh fake transcriber."""
    return FakeTranscriber()


AppFactory = Callable[..., Litestar]


@pytest.fixture
def build_app(fake_transcriber: FakeTranscriber) -> AppFactory:
    """Build an app on the fake transcriber with settings overrides."""

    def factory(clock: Clock | None = None, **overrides: Any) -> Litestar:
        return build_fake_app(fake_transcriber, clock=clock, **overrides)[0]

    return factory


@pytest.fixture
async def client(build_app: AppFactory) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """A test client on an app with the fake transcriber and default settings."""
    async with AsyncTestClient(app=build_app()) as test_client:
        yield test_client


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start real server processes on demand (waiting until ready); stop them all afterwards."""
    servers: list[Server] = []

    def factory(**env: str) -> Server:
        server = start_server(tmp_path, **env)
        servers.append(server)
        server.wait_ready()
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def live_server_env() -> dict[str, str]:
    """The environment of a module's `live_server`: a module overrides this to choose."""
    return {}


@pytest.fixture(scope="module")
def live_server(
    live_server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One real server for every test of a module, started with its `live_server_env`."""
    with served(tmp_path_factory.mktemp("live"), **live_server_env) as server:
        yield server


@pytest.fixture(scope="module")
def sdk(live_server: Server) -> openai.OpenAI:
    """The official OpenAI client pointed at `live_server` (no retries: errors must show)."""
    import openai

    return openai.OpenAI(base_url=live_server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="session")
def real_settings() -> Settings:
    """Settings that use the real bundled models on the CPU."""
    return make_settings(cpu_fallback_model="base")


@pytest.fixture
def real_app(real_settings: Settings) -> Iterator[Litestar]:
    """An app with the real bundled models (base for everything by default)."""
    yield create_app(real_settings)
