"""Turning a model's files into a `Transcriber`, and giving its memory back afterwards."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
from collections.abc import Callable
from typing import Literal

import structlog

from app.transcription.engine import FasterWhisperTranscriber, Transcriber
from app.transcription.models.placement import CPU_COMPUTE_TYPES, CUDA_COMPUTE_TYPES, Placement
from app.transcription.models.sources import InMemoryModel, ModelLocation, ModelUnavailableError

__all__ = ["Loader", "cpu_layout", "limit_blas_threads", "load_faster_whisper", "release_memory"]

log = structlog.get_logger(__name__)

Loader = Callable[[ModelLocation, Placement], Transcriber]
"""Loads one model (blocking; the manager runs it in a thread)."""


def cpu_layout(cores: int, replicas: int = 0, batch_size: int = 1) -> tuple[int, int]:
    """(replicas, threads per replica) for a CPU model on `cores` cores; `replicas` 0 = auto.

    CTranslate2 runs each replica on its own threads over one shared copy of the
    weights. Beam search steps are too small to split well over threads: on the
    2-core machines here one thread decodes a beam-5 window about a third faster than
    two do, while the encoder gains from two. Replicas of one thread each, given
    parts of a batch at once, therefore beat one replica of two threads (docs/
    benchmarks.md). Auto: one thread per replica up to 3 cores, two beyond, so a
    lone window on a large machine still encodes on more than one core.

    The worker calls the model from one thread, one batch at a time, and a batch of
    `batch_size` splits into at most that many parts: more replicas would never run
    at once, yet each keeps its own working memory once used (a 30 s window's encoder
    buffers, about 90 MiB with `base`). So there are never more than `batch_size`.
    """
    cores = max(1, cores)
    auto = cores if cores <= 3 else cores // 2
    count = min(replicas, cores) if replicas > 0 else auto
    count = max(1, min(count, batch_size))
    return count, max(1, cores // count)


def limit_blas_threads() -> None:
    """Run numpy's BLAS on the calling thread only (process-wide).

    numpy's bundled OpenBLAS keeps its worker threads spinning for a while after each
    call (the mel filterbank of every window is one); on a small machine they take
    the cores CTranslate2's encoder starts on next, which made a short clip's encoder
    pass about 40 % slower. The matrices there are small: one thread is enough.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def load_faster_whisper(
    location: ModelLocation,
    placement: Placement,
    cpu_threads: int = 0,
    encoder_context: Literal["adaptive", "full"] = "adaptive",
    redo_failures: bool = True,
    cpu_replicas: int = 0,
    batch_size: int = 1,
) -> Transcriber:
    """Load a CTranslate2 Whisper model, stepping down compute types the device refuses.

    `redo_failures=False` keeps a shortened window's first decoding even where it shows
    a failure sign (live passes: a second decoding would double a pass, and a pass
    that fails is dropped and followed by the next one a second later anyway).
    On a CPU, `cpu_replicas` (0 = auto, at most `batch_size`, see `cpu_layout`) share
    the `cpu_threads` cores (0 = every core); on CUDA there is one replica.
    """
    from app.transcription import cue_timing
    from app.transcription.encoder_context import policy_for

    limit_blas_threads()
    cores = cpu_threads or os.cpu_count() or 1
    if placement.device == "cpu":
        replicas, threads = cpu_layout(cores, cpu_replicas, batch_size)
    else:
        replicas, threads = 1, cores

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
            model = cue_timing.CueTimedWhisperModel(
                source,
                device=placement.device,
                compute_type=compute_type,
                cpu_threads=threads,
                num_workers=replicas,
                # faster-whisper takes the tokenizer out of the dict: give it a copy.
                files=dict(files) if files is not None else None,
            )
            model.encoder_context = policy_for(encoder_context)
            model.redo_failures = redo_failures
        except ValueError as exc:  # CTranslate2 raises ValueError for an unsupported type
            last_error = exc
            log.warning("compute_type_unsupported", compute_type=compute_type)
            continue
        except RuntimeError as exc:  # out of device memory, broken files: try a smaller model
            log.warning("model_load_failed", model=name, error=type(exc).__name__)
            raise ModelUnavailableError(f"{name}: {type(exc).__name__}") from exc
        log.info("model_layout", model=name, replicas=replicas, threads_per_replica=threads)
        return FasterWhisperTranscriber(model, compute_type=compute_type, parallel=replicas)
    raise ModelUnavailableError(str(last_error))


def release_memory() -> None:
    """Give freed model memory back to the OS so RSS really falls after an unload.

    Blocking (a full collection, then glibc's trim): callers run it in a thread.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
