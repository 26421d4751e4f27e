"""Live transcription beside the batch worker: session slots, a live executor and model.

Framework-free. Live passes run in their own threads (`live` executor, one per
allowed session) on their own model instance, loaded with LIVE_CPU_THREADS
threads by a second `ModelManager`, so a live pass never waits behind a batch job
in the worker's inference thread and the cores are split between the two.

Whether a session may open (`open_session`) and what a kept session becomes
(`keep`: the task's options and transcript) are decided here; a transport only
passes on what its client asked and renders the answers or the domain errors.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
import numpy as np
import numpy.typing as npt
import structlog

from app.config import Settings
from app.observability.metrics import LiveMetrics
from app.service.core import JobSpec, TranscriptionService
from app.service.errors import LiveDisabledError, NoLiveSlotError
from app.transcription.catalogue import spec
from app.transcription.live.audio import SpeechScorer, silero_scorer
from app.transcription.live.limits import LiveLimits
from app.transcription.live.passes import whisper_pass
from app.transcription.live.session import LiveConfig, LiveSession
from app.transcription.live.transcript import transcript_of
from app.transcription.live.turn import PassResult
from app.transcription.models import ModelManager
from app.transcription.models.loading import load_faster_whisper
from app.transcription.types import TranscribeOptions

__all__ = [
    "OPENAI_LIVE_MODELS",
    "SESSION_RETRY_AFTER_S",
    "KeptSession",
    "LiveService",
    "default_live_model",
    "live_mode",
]

log = structlog.get_logger(__name__)

# Model names of OpenAI's realtime transcription that mean "the server's live model".
OPENAI_LIVE_MODELS = (
    "whisper-1",
    "gpt-transcribe",
    "gpt-live-transcribe",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-12-15",
    "gpt-4o-transcribe-diarize",
    "gpt-realtime-whisper",
)
# How long an ended session waits for its pass to notice (one segment's decoding).
PASS_STOP_WAIT_S = 10.0
# Retry-After for a session refused because every slot is taken: live sessions last minutes.
SESSION_RETRY_AFTER_S = 30


@dataclass(frozen=True, slots=True)
class KeptSession:
    """A live session stored as a finished task: the task's id and how many turns it holds."""

    task_id: str
    turns: int


API_NODE_REFUSAL = (
    "live transcription does not run on this API node of a cluster (API_NODE_LIVE=refuse); "
    "use a server that offers it"
)


def live_mode(settings: Settings) -> str:
    """How this server answers /v1/realtime: `on`, `off` (MAX_LIVE_SESSIONS=0), or
    `refused` (an API node with API_NODE_LIVE=refuse: it never loads a live model)."""
    if settings.max_live_sessions == 0:
        return "off"
    if settings.queue_backend == "redis" and settings.api_node_live == "refuse":
        return "refused"
    return "on"


def default_live_model(models: ModelManager) -> str:
    """tiny.en where this server has it (English keeps real-time pace on 2 cores), else base."""
    return "tiny.en" if "tiny.en" in models.allowed_models() else "base"


class LiveService:
    """Slots for live sessions, their model and the threads their passes run in."""

    def __init__(
        self,
        settings: Settings,
        metrics: LiveMetrics,
        *,
        models: ModelManager | None = None,
        scorer_factory: Callable[[], SpeechScorer] = silero_scorer,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.mode = live_mode(settings)
        self.max_sessions = settings.max_live_sessions if self.mode == "on" else 0
        threads = settings.live_threads
        # Loaded with the first session, unloaded LIVE_UNLOAD_AFTER_S after the last pass:
        # an idle server holds only the batch model.
        live_settings = msgspec.structs.replace(
            settings, cpu_threads=threads, unload_model_after_s=settings.live_unload_after_s
        )
        self.models = models or ModelManager(
            live_settings,
            loader=functools.partial(
                load_faster_whisper,
                cpu_threads=threads,
                # A live pass is one window: split replicas would leave threads idle.
                cpu_replicas=1,
                encoder_context=settings.encoder_context,
                redo_failures=True,
            ),
        )
        self.model = settings.live_model or default_live_model(self.models)
        # The model of each finished turn's final pass (None: the live model's passes commit).
        self.final_model = settings.live_final_model or None
        # Live audio is bounded like an upload's (MAX_AUDIO_DURATION_S) and held only briefly.
        self.limits = LiveLimits(max_audio_s=settings.max_audio_duration_s)
        self._scorer_factory = scorer_factory
        self._scorer: SpeechScorer | None = None
        self._scorer_lock = asyncio.Lock()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._preload: asyncio.Task[None] | None = None
        self._stopping = threading.Event()
        self.active = 0

    @property
    def enabled(self) -> bool:
        """Whether live sessions are allowed at all (MAX_LIVE_SESSIONS > 0)."""
        return self.max_sessions > 0

    def start(self) -> None:
        """Start the live threads; the model loads when the first session opens."""
        if not self.enabled:
            return
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.max_sessions, thread_name_prefix="live"
        )

    async def stop(self) -> None:
        """Drop the threads and the model (open sessions end with the server).

        Running passes stop at their next segment; shutdown does not wait for them.
        """
        self._stopping.set()
        if self._preload is not None:
            self._preload.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        await self.models.close()

    def warm_up(self) -> None:
        """Begin loading the live model and the voice detector for a session just opened.

        In the background: the session's first pass waits for the load instead of
        the client's first events; a failure is reported by that pass.
        """
        if self._preload is None or self._preload.done():
            self._preload = asyncio.get_running_loop().create_task(self._warm_up())

    async def _warm_up(self) -> None:
        try:
            for model in dict.fromkeys(m for m in (self.model, self.final_model) if m):
                async with self.models.acquire(
                    needs_multilingual=spec(model).multilingual, model=model
                ):
                    pass
            await self.scorer()
        except Exception as exc:  # a session tries again (and reports) on its own
            log.error("live_preload_failed", error=type(exc).__name__)

    # -- slots

    def open_session(self, service: TranscriptionService) -> None:
        """Take a session slot.

        Raises LiveDisabledError when live transcription is off, ShuttingDownError
        while `service` shuts down, and NoLiveSlotError when MAX_LIVE_SESSIONS are open.
        """
        if self.mode == "refused":
            raise LiveDisabledError(API_NODE_REFUSAL)
        if not self.enabled:
            raise LiveDisabledError()
        if service.is_draining:
            raise service.shutting_down_error("the server is shutting down")
        if self.active >= self.max_sessions:
            raise NoLiveSlotError(self.max_sessions, SESSION_RETRY_AFTER_S)
        self.active += 1
        self.metrics.active.inc()

    def close(self, outcome: str) -> None:
        """Give a slot back; `outcome` says how the session ended (for /metrics)."""
        self.active -= 1
        self.metrics.active.dec()
        self.metrics.sessions.labels(outcome=outcome).inc()
        log.info("live_session_ended", outcome=outcome)

    # -- the model

    async def scorer(self) -> SpeechScorer:
        """The voice detector's model, loaded once (in a thread)."""
        async with self._scorer_lock:
            if self._scorer is None:
                self._scorer = await asyncio.to_thread(self._scorer_factory)
            return self._scorer

    async def run_pass(
        self, audio: npt.NDArray[np.float32], prompt: str | None, config: LiveConfig
    ) -> PassResult:
        """One pass with the session's model and language, in a live thread."""
        if self._executor is None:
            raise RuntimeError("live transcription has not been started")
        model = config.model or self.model
        left = threading.Event()
        stopping = self._stopping
        async with self.models.acquire(
            needs_multilingual=config.language != "en", model=model
        ) as lease:
            blocking = whisper_pass(
                lease.transcriber, config.language, lambda: left.is_set() or stopping.is_set()
            )
            loop = asyncio.get_running_loop()
            running = loop.run_in_executor(self._executor, blocking, audio, prompt)
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                # The session ended: the pass stops at its next segment, and the model
                # stays leased (not unloaded) until the thread has really let go of it.
                left.set()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(running), PASS_STOP_WAIT_S)
                raise

    # -- keeping a session

    async def keep(
        self, service: TranscriptionService, session: LiveSession, *, owner: str | None
    ) -> KeptSession | None:
        """Store the session's completed turns as a finished task of `owner`; None if none.

        Turns already committed are waited for; audio still arriving is not part of
        it. The task records how its text was made: the session's model and
        language (English for an English-only model), word timings, beam 1,
        temperature 0.
        """
        turns = await session.settled()
        if not turns:
            return None
        config = session.config
        # The model whose text the completed turns hold.
        model = config.final_model or config.model or self.model
        language = config.language or (None if spec(model).multilingual else "en")
        transcript = transcript_of(
            turns, duration_s=session.audio_seconds, fallback_language=language or "en"
        )
        options = TranscribeOptions(
            model=model, language=language, word_timestamps=True, beam_size=1, temperature=0.0
        )
        job = await service.keep_finished(
            JobSpec(task_type="transcribe", options=options, surface="live", owner=owner),
            transcript,
            model=model,
        )
        return KeptSession(task_id=job.id, turns=len(turns))
