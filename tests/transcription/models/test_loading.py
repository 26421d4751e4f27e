"""Loading a model's files into a transcriber (app.transcription.models.loading).

A fake WhisperModel that refuses chosen compute types stands in for faster-whisper.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.transcription.engine import FasterWhisperTranscriber
from app.transcription.models.loading import (
    cpu_layout,
    limit_blas_threads,
    load_faster_whisper,
)
from app.transcription.models.placement import Placement
from app.transcription.models.sources import InMemoryModel, ModelUnavailableError


class FakeWhisperModel:
    """Stands in for faster_whisper.WhisperModel; refuses the compute types it is told to."""

    refused: frozenset[str] = frozenset()
    tried: list[tuple[str, str]] = []

    def __init__(
        self,
        path: str,
        *,
        device: str,
        compute_type: str,
        cpu_threads: int,
        num_workers: int = 1,
        files: dict[str, bytes] | None = None,
    ) -> None:
        type(self).tried.append((device, compute_type))
        if compute_type in self.refused:
            raise ValueError(f"Requested {compute_type} compute type is not supported")
        self.path = path
        self.files = dict(files) if files is not None else None
        if files is not None:
            files.pop("tokenizer.json", None)  # as faster-whisper does
        self.device = device
        self.compute_type = compute_type
        self.layout = (num_workers, cpu_threads)


@pytest.fixture
def fake_whisper(monkeypatch: pytest.MonkeyPatch) -> type[FakeWhisperModel]:
    """Install a fresh FakeWhisperModel subclass as the model class the loader builds."""
    from app.transcription import cue_timing

    class Fake(FakeWhisperModel):
        tried: list[tuple[str, str]] = []  # a fresh record per test

    monkeypatch.setattr(cue_timing, "CueTimedWhisperModel", Fake)
    return Fake


def test_loader_steps_down_compute_type_the_card_refuses(
    fake_whisper: type[FakeWhisperModel],
) -> None:
    """float16 refused by the card: the loader retries with int8_float16 and returns."""
    fake_whisper.refused = frozenset({"float16"})
    transcriber = load_faster_whisper(Path("/models/small"), Placement("cuda", "float16"))
    assert isinstance(transcriber, FasterWhisperTranscriber)
    assert fake_whisper.tried == [("cuda", "float16"), ("cuda", "int8_float16")]
    assert transcriber.model.compute_type == "int8_float16"
    assert transcriber.model.path == str(Path("/models/small"))


def test_loader_uses_requested_type_when_accepted(fake_whisper: type[FakeWhisperModel]) -> None:
    """The placement's compute type is tried first and used when it works."""
    transcriber = load_faster_whisper(Path("/m"), Placement("cpu", "int8"))
    assert fake_whisper.tried == [("cpu", "int8")]
    assert isinstance(transcriber, FasterWhisperTranscriber)


def test_loader_cpu_falls_back_to_float32(fake_whisper: type[FakeWhisperModel]) -> None:
    """On the CPU an int8 refusal falls back to float32."""
    fake_whisper.refused = frozenset({"int8"})
    transcriber = load_faster_whisper(Path("/m"), Placement("cpu", "int8"))
    assert isinstance(transcriber, FasterWhisperTranscriber)
    assert fake_whisper.tried == [("cpu", "int8"), ("cpu", "float32")]


def test_loader_raises_unavailable_when_every_type_is_refused(
    fake_whisper: type[FakeWhisperModel],
) -> None:
    """When no compute type works the loader raises ModelUnavailableError."""
    fake_whisper.refused = frozenset({"float16", "int8_float16", "float32"})
    with pytest.raises(ModelUnavailableError):
        load_faster_whisper(Path("/m"), Placement("cuda", "float16"))
    assert [t for _, t in fake_whisper.tried] == ["float16", "int8_float16", "float32"]


def test_loader_passes_in_memory_files_to_faster_whisper(
    fake_whisper: type[FakeWhisperModel],
) -> None:
    """An InMemoryModel is loaded through faster-whisper's files= argument, a copy each time."""
    files = {"model.bin": b"w", "tokenizer.json": b"{}", "config.json": b"{}"}
    location = InMemoryModel(name="base", files=files)
    first = load_faster_whisper(location, Placement("cpu", "int8"))
    second = load_faster_whisper(location, Placement("cpu", "int8"))
    for transcriber in (first, second):
        model = transcriber.model  # type: ignore[attr-defined]
        assert model.path == "base"
        assert model.files == files
    assert "tokenizer.json" in location.files  # the loader's pop did not reach ours


def test_loader_turns_out_of_memory_into_unavailable(
    fake_whisper: type[FakeWhisperModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A RuntimeError while loading (e.g. CUDA out of memory) makes the manager step down."""

    def out_of_memory(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("CUDA failed with error out of memory")

    monkeypatch.setattr(fake_whisper, "__init__", out_of_memory)
    with pytest.raises(ModelUnavailableError):
        load_faster_whisper(Path("/models/large-v3"), Placement("cuda", "float16"))


@pytest.mark.parametrize(
    ("cores", "asked", "batch_size", "layout"),
    [
        (1, 0, 4, (1, 1)),
        (2, 0, 4, (2, 1)),
        (3, 0, 4, (3, 1)),
        (4, 0, 4, (2, 2)),
        (16, 0, 8, (8, 2)),
        (16, 0, 4, (4, 4)),
        (2, 1, 4, (1, 2)),
        (8, 4, 4, (4, 2)),
        (2, 5, 4, (2, 1)),
        (2, 0, 1, (1, 2)),
        (8, 8, 2, (2, 4)),
    ],
)
def test_cpu_layout_splits_cores_into_replicas(
    cores: int, asked: int, batch_size: int, layout: tuple[int, int]
) -> None:
    """Auto: a replica per core up to 3 cores, per two beyond; never more than cores or batch."""
    assert cpu_layout(cores, asked, batch_size) == layout


def test_cpu_model_is_loaded_as_replicas_and_splits_batches(
    fake_whisper: type[FakeWhisperModel],
) -> None:
    """On a CPU the replicas share the cores, and the transcriber splits batches over them."""
    transcriber = load_faster_whisper(
        Path("/m"), Placement("cpu", "int8"), cpu_threads=4, batch_size=4
    )
    assert isinstance(transcriber, FasterWhisperTranscriber)
    assert transcriber.model.layout == (2, 2)
    assert transcriber.parallel == 2
    single = load_faster_whisper(Path("/m"), Placement("cpu", "int8"), 2, cpu_replicas=1)
    assert isinstance(single, FasterWhisperTranscriber)
    assert (single.model.layout, single.parallel) == ((1, 2), 1)
    unbatched = load_faster_whisper(Path("/m"), Placement("cpu", "int8"), 2, batch_size=1)
    assert isinstance(unbatched, FasterWhisperTranscriber)
    assert (unbatched.model.layout, unbatched.parallel) == ((1, 2), 1)


def test_cuda_model_has_one_replica(fake_whisper: type[FakeWhisperModel]) -> None:
    """A GPU model is one replica whatever CPU_REPLICAS says."""
    transcriber = load_faster_whisper(
        Path("/m"), Placement("cuda", "float16"), cpu_threads=4, cpu_replicas=4, batch_size=4
    )
    assert isinstance(transcriber, FasterWhisperTranscriber)
    assert transcriber.model.layout[0] == 1 and transcriber.parallel == 1


def test_numpy_blas_runs_on_one_thread_once_limited() -> None:
    """After the limit, numpy's BLAS libraries report a single thread."""
    import numpy as np
    from threadpoolctl import threadpool_info

    np.ones((64, 64)) @ np.ones((64, 64))  # BLAS is loaded and initialised
    limit_blas_threads()
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas, "numpy's BLAS was not found"
    assert all(pool["num_threads"] == 1 for pool in blas)
