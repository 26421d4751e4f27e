"""`ModelManager`: chooses, loads, shares and unloads models.

Loaded models are held by reference count; an idle timer (UNLOAD_MODEL_AFTER_S)
unloads one only when no job holds it. The timer runs on a `Scheduler` and load
times are measured with a clock, both passed in, so tests move time by hand.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import structlog

from app.transcription.catalogue import CATALOGUE, canonical_model_name, spec
from app.transcription.engine import Transcriber
from app.transcription.models.loading import Loader, load_faster_whisper, release_memory
from app.transcription.models.placement import (
    CTranslate2Probe,
    Device,
    DeviceProbe,
    ModelAboveCapError,
    ModelChoiceSettings,
    candidates_for_job,
    choose_cap,
    choose_placement,
    choose_target_model,
    within_cap,
)
from app.transcription.models.sources import ModelSources, ModelUnavailableError

__all__ = ["ModelLease", "ModelManager", "ModelManagerSettings", "Scheduler", "TimerHandle"]

log = structlog.get_logger(__name__)


class ModelManagerSettings(ModelChoiceSettings, Protocol):
    """The part of `Settings` the manager reads."""

    @property
    def model_dir(self) -> str | None: ...
    @property
    def model_cache_dir(self) -> str: ...
    @property
    def allow_download(self) -> bool: ...
    @property
    def cpu_threads(self) -> int: ...
    @property
    def cpu_replicas(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def encoder_context(self) -> Literal["adaptive", "full"]: ...
    @property
    def unload_model_after_s(self) -> float | None: ...


class TimerHandle(Protocol):
    """A pending call that can still be called off."""

    def cancel(self) -> None:
        """Make sure the callback does not run."""
        ...


class Scheduler(Protocol):
    """Runs a callback on the event loop after a delay (asyncio's `call_later` fits)."""

    def call_later(self, delay: float, callback: Callable[[], None], /) -> TimerHandle:
        """Call `callback` once, `delay` seconds from now."""
        ...


@dataclass
class _Loaded:
    name: str
    transcriber: Transcriber
    refs: int = 0
    unload_timer: TimerHandle | None = None


@dataclass(frozen=True, slots=True)
class ModelLease:
    """A loaded model handed to one job; valid until the job releases it."""

    target: str
    name: str
    device: Device
    transcriber: Transcriber


class ModelManager:
    """Chooses, loads, shares and unloads models.

    Loading runs in a thread; bookkeeping runs on the event loop, so the counts
    need no lock. A model is unloaded only when its count is zero and its idle
    timer fires (UNLOAD_MODEL_AFTER_S; 0 = as soon as the loop is free after the
    job; None = never). `scheduler` defaults to the running loop and `clock` to
    `time.monotonic`.
    """

    def __init__(
        self,
        settings: ModelManagerSettings,
        *,
        probe: DeviceProbe | None = None,
        sources: ModelSources | None = None,
        loader: Loader | None = None,
        scheduler: Scheduler | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        probe = probe or CTranslate2Probe()
        self.placement = choose_placement(settings, probe)
        self.target = choose_target_model(settings, self.placement, probe)
        self._cap = choose_cap(settings, self.placement)
        self.cap: str | None = self._cap.name
        self._sources = sources or ModelSources(
            model_dir=settings.model_dir,
            cache_dir=settings.model_cache_dir,
            allow_download=settings.allow_download,
        )
        self._loader = loader or functools.partial(
            load_faster_whisper,
            cpu_threads=settings.cpu_threads,
            cpu_replicas=settings.cpu_replicas,
            batch_size=settings.batch_size,
            encoder_context=settings.encoder_context,
        )
        # Without downloads a missing model stays missing; with them, ModelSources
        # decides when the hub is worth asking again.
        self._misses_are_final = not settings.allow_download
        self._unload_after: float | None = settings.unload_model_after_s
        self._scheduler = scheduler
        self._clock = clock
        self._loaded: dict[str, _Loaded] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._step_downs_logged: set[tuple[str, str]] = set()
        self._unavailable: set[str] = set()
        self._releases: set[asyncio.Task[None]] = set()
        self.loading: str | None = None
        self.last_loaded: str | None = None
        self.load_seconds: dict[str, float] = {}
        # Loads and unloads per model since start (the metrics' model turnover).
        self.load_counts: collections.Counter[str] = collections.Counter()
        self.unload_counts: collections.Counter[str] = collections.Counter()

    # -- queries

    @property
    def loaded_models(self) -> list[str]:
        """Names of models in memory now."""
        return list(self._loaded)

    def plan(
        self, *, needs_multilingual: bool, translate: bool = False, model: str | None = None
    ) -> list[str]:
        """Candidates a job would try, best first (raises NoModelAllowedError).

        `model` is a job's own choice (already checked by `requested_model`); it takes
        the place of the server's target for that job, with the same step-down rules.
        """
        return candidates_for_job(
            model or self.target,
            self.cap,
            needs_multilingual=needs_multilingual,
            translate=translate,
        )

    def requested_model(self, name: str) -> str:
        """The catalogue name of a model a job asks for.

        Raises UnknownModelError for a name outside the catalogue and
        ModelAboveCapError for one above the cap (MAX_MODEL, or on a CPU server
        without it CPU_FALLBACK_MODEL), whose message names the cap.
        """
        canonical = canonical_model_name(name)
        if not within_cap(canonical, self.cap):
            raise ModelAboveCapError(self._cap.refusal(canonical))
        return canonical

    def names_within_cap(self) -> list[str]:
        """Every catalogue name a job may ask for (the same cap), smallest first."""
        return [m.name for m in CATALOGUE if within_cap(m.name, self.cap)]

    def allowed_models(self) -> list[str]:
        """Catalogue names within the cap that this machine has offline."""
        return [
            name for name in self.names_within_cap() if self._sources.is_available_offline(name)
        ]

    # -- lifecycle

    async def preload(self) -> None:
        """Load the model ordinary jobs will use (LOAD_MODEL_ON_STARTUP)."""
        async with self.acquire(needs_multilingual=spec(self.target).multilingual):
            pass

    async def close(self) -> None:
        """Drop every model (shutdown)."""
        for loaded in list(self._loaded.values()):
            self._cancel_timer(loaded)
        self._loaded.clear()
        await asyncio.gather(*self._releases)
        await asyncio.to_thread(release_memory)

    @contextlib.asynccontextmanager
    async def acquire(
        self, *, needs_multilingual: bool, translate: bool = False, model: str | None = None
    ) -> AsyncIterator[ModelLease]:
        """Hold the best available model (for `model`, if the job named one) for one job."""
        candidates = self.plan(
            needs_multilingual=needs_multilingual, translate=translate, model=model
        )
        loaded = await self._obtain(candidates)
        loaded.refs += 1
        self._cancel_timer(loaded)
        try:
            yield ModelLease(
                target=candidates[0],
                name=loaded.name,
                device=self.placement.device,
                transcriber=loaded.transcriber,
            )
        finally:
            loaded.refs -= 1
            if loaded.refs == 0:
                self._schedule_unload(loaded)

    async def _obtain(self, candidates: list[str]) -> _Loaded:
        for name in candidates:
            if name in self._unavailable:
                continue
            loaded = await self._load(name)
            if loaded is None:
                continue
            self._log_step_down(candidates[0], name)
            return loaded
        raise ModelUnavailableError(
            "no model is available on this server for this job (tried "
            + ", ".join(candidates)
            + ")"
        )

    async def _load(self, name: str) -> _Loaded | None:
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            if name in self._loaded:
                return self._loaded[name]
            self.loading = name
            started = self._clock()
            try:
                transcriber = await asyncio.to_thread(self._locate_and_load, name)
            except ModelUnavailableError:
                if self._misses_are_final:
                    self._unavailable.add(name)
                return None
            finally:
                self.loading = None
            seconds = self._clock() - started
            self.load_seconds[name] = seconds
            self.load_counts[name] += 1
            self.last_loaded = name
            log.info(
                "model_loaded",
                model=name,
                device=self.placement.device,
                # The loader may have stepped down from the placement's type.
                compute_type=getattr(transcriber, "compute_type", self.placement.compute_type),
                seconds=round(seconds, 3),
            )
            loaded = _Loaded(name=name, transcriber=transcriber)
            self._loaded[name] = loaded
            return loaded

    def _locate_and_load(self, name: str) -> Transcriber:
        path = self._sources.locate(name)
        return self._loader(path, self.placement)

    def _log_step_down(self, target: str, used: str) -> None:
        if target == used or (target, used) in self._step_downs_logged:
            return
        self._step_downs_logged.add((target, used))
        log.warning("model_step_down", target_model=target, used_model=used)

    # -- unloading

    def _cancel_timer(self, loaded: _Loaded) -> None:
        if loaded.unload_timer is not None:
            loaded.unload_timer.cancel()
            loaded.unload_timer = None

    def _schedule_unload(self, loaded: _Loaded) -> None:
        # Even 0 goes through the timer: a queued job that takes the model before
        # the loop gets round to the timer keeps it, instead of reloading it.
        if self._unload_after is None:
            return
        scheduler = self._scheduler or asyncio.get_running_loop()
        unload = functools.partial(self._unload, loaded.name)
        loaded.unload_timer = scheduler.call_later(self._unload_after, unload)

    def _unload(self, name: str) -> None:
        loaded = self._loaded.get(name)
        if loaded is None or loaded.refs > 0:
            return
        loaded.unload_timer = None
        del self._loaded[name]
        self.unload_counts[name] += 1
        log.info("model_unloaded", model=name)
        # The collection and trim block: run them off the event loop.
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(release_memory))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)
