"""LiveService's decisions: who may open a session, and what a kept session's task records."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from app.observability.metrics import LiveMetrics
from app.service import JobSpec, TranscriptionService
from app.service.errors import LiveDisabledError, NoLiveSlotError, ShuttingDownError
from app.service.live import SESSION_RETRY_AFTER_S, LiveService, live_mode
from app.transcription.engine import JobCancelledError
from app.transcription.live.events import LiveEvent
from app.transcription.live.session import LiveConfig, LiveSession
from app.transcription.live.turn import PassResult
from app.transcription.types import Transcript, Word
from tests.conftest import FakeTranscriber, fake_manager, make_settings
from tests.transcription.rig import FakeClock


class KeepingService:
    """The part of TranscriptionService a live session uses: draining, and keeping a task."""

    def __init__(self, *, draining: bool = False) -> None:
        self.is_draining = draining
        self.kept: list[tuple[JobSpec, Transcript, str]] = []

    def shutting_down_error(self, reason: str | None = None) -> ShuttingDownError:
        """What the real service answers while it drains."""
        return ShuttingDownError(reason or "shutting down", 7)

    async def keep_finished(self, spec: JobSpec, transcript: Transcript, *, model: str) -> Any:
        """Record what would be stored; a job-like answer with an id."""
        self.kept.append((spec, transcript, model))
        return SimpleNamespace(id="task-1")


def live_service(**overrides: Any) -> LiveService:
    """A LiveService on a fake model manager (nothing is loaded by these tests)."""
    settings = make_settings(**{"max_live_sessions": 1, **overrides})
    manager = fake_manager(settings, FakeTranscriber())
    return LiveService(settings, LiveMetrics(CollectorRegistry()), models=manager)


def as_service(fake: KeepingService) -> TranscriptionService:
    """The fake where the service is expected (it has the attributes LiveService uses)."""
    return fake  # type: ignore[return-value]


async def said(audio: Any, prompt: str | None, config: LiveConfig) -> PassResult:
    """Every pass hears 'hello world'."""
    words = [Word(0.0, 0.4, " hello", 0.9), Word(0.4, 0.8, " world", 0.9)]
    return PassResult(words=words, segment_ends=[0.8], language="en")


async def one_turn(config: LiveConfig) -> LiveSession:
    """A manual session with one committed, transcribed turn."""

    async def emit(_: LiveEvent) -> None:
        return None

    session = LiveSession(config, run_pass=said, emit=emit, clock=FakeClock(), scorer=None)
    runner = asyncio.create_task(session.run())
    await session.append(np.zeros(24000, dtype="<i2").tobytes())
    assert await session.commit()
    await session.settled()
    runner.cancel()
    return session


def test_open_session_refuses_with_the_domain_error_of_each_reason() -> None:
    """Live off, draining, no free slot: each its own error; a free slot is taken."""
    with pytest.raises(LiveDisabledError):
        live_service(max_live_sessions=0).open_session(as_service(KeepingService()))
    live = live_service()
    with pytest.raises(ShuttingDownError):
        live.open_session(as_service(KeepingService(draining=True)))
    live.open_session(as_service(KeepingService()))
    assert live.active == 1
    with pytest.raises(NoLiveSlotError) as full:
        live.open_session(as_service(KeepingService()))
    assert full.value.retry_after_s == SESSION_RETRY_AFTER_S
    assert live.active == 1


@pytest.mark.parametrize(
    ("config", "model", "language"),
    [
        (LiveConfig(turn_detection=None), "tiny.en", "en"),
        (LiveConfig(turn_detection=None, model="base"), "base", None),
        (LiveConfig(turn_detection=None, model="base", language="de"), "base", "de"),
        (LiveConfig(turn_detection=None, final_model="base", language="en"), "base", "en"),
    ],
)
async def test_a_kept_session_records_the_model_and_language_it_ran_with(
    config: LiveConfig, model: str, language: str | None
) -> None:
    """The task's options: the model that wrote the text (LIVE_FINAL_MODEL's when set) and the
    language (English for an English-only model)."""
    live, service = live_service(live_model="tiny.en"), KeepingService()
    kept = await live.keep(as_service(service), await one_turn(config), owner="key-1")
    assert kept is not None and (kept.task_id, kept.turns) == ("task-1", 1)
    [(spec, transcript, used)] = service.kept
    assert (spec.owner, spec.surface, used) == ("key-1", "live", model)
    assert (spec.options.model, spec.options.language) == (model, language)
    assert spec.options.word_timestamps and spec.options.beam_size == 1
    assert transcript.text == "hello world"


async def test_nothing_is_kept_before_a_turn_is_complete() -> None:
    """A session without a completed turn keeps nothing and stores no task."""

    async def emit(_: LiveEvent) -> None:
        return None

    session = LiveSession(
        LiveConfig(turn_detection=None), run_pass=said, emit=emit, clock=FakeClock(), scorer=None
    )
    service = KeepingService()
    assert await live_service().keep(as_service(service), session, owner=None) is None
    assert service.kept == []


def test_an_api_node_refuses_live_sessions_by_default_and_never_loads_a_model() -> None:
    """QUEUE_BACKEND=redis with API_NODE_LIVE=refuse: a clear refusal naming the setting, no
    live threads, no live model; `local` runs the node's own live model; the mode is shown."""
    node = live_service(queue_backend="redis")
    assert live_mode(node.settings) == "refused" and not node.enabled
    node.start()
    with pytest.raises(LiveDisabledError) as refused:
        node.open_session(as_service(KeepingService()))
    assert "API_NODE_LIVE" in str(refused.value)
    assert node.models.loaded_models == [] and node._executor is None
    local = live_service(queue_backend="redis", api_node_live="local")
    assert live_mode(local.settings) == "on"
    local.open_session(as_service(KeepingService()))
    assert local.active == 1
    assert live_mode(make_settings(max_live_sessions=0)) == "off"


async def started(transcriber: FakeTranscriber) -> None:
    """Wait until the live thread is inside the model."""
    for _ in range(500):
        if transcriber.calls:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the pass never reached the model")


async def test_a_pass_whose_session_ended_stops_and_keeps_its_model_until_then() -> None:
    """Cancelling a pass (the client left) stops its thread at the next check, and the
    live model stays leased, so not unloadable, until the thread has let go of it."""
    settings = make_settings(max_live_sessions=1)
    transcriber = FakeTranscriber(gate=threading.Event())  # never opens: only a stop ends it
    live = LiveService(
        settings, LiveMetrics(CollectorRegistry()), models=fake_manager(settings, transcriber)
    )
    live.start()
    try:
        audio = np.zeros(16000, dtype=np.float32)
        running = asyncio.create_task(live.run_pass(audio, None, LiveConfig(language="en")))
        await started(transcriber)
        loaded = live.models._loaded[live.model]
        assert loaded.refs == 1
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(running, 5)
        assert loaded.refs == 0
    finally:
        await live.stop()


async def test_stopping_the_service_stops_a_running_pass() -> None:
    """Shutdown does not wait for a pass: the pass sees the stop and ends."""
    settings = make_settings(max_live_sessions=1)
    transcriber = FakeTranscriber(gate=threading.Event())
    live = LiveService(
        settings, LiveMetrics(CollectorRegistry()), models=fake_manager(settings, transcriber)
    )
    live.start()
    audio = np.zeros(16000, dtype=np.float32)
    running = asyncio.create_task(live.run_pass(audio, None, LiveConfig(language="en")))
    await started(transcriber)
    await live.stop()
    with pytest.raises(JobCancelledError):
        await asyncio.wait_for(running, 5)
