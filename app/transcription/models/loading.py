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

__all__ = ["Loader", "load_faster_whisper", "release_memory"]

log = structlog.get_logger(__name__)

Loader = Callable[[ModelLocation, Placement], Transcriber]
"""Loads one model (blocking; the manager runs it in a thread)."""


def load_faster_whisper(
    location: ModelLocation,
    placement: Placement,
    cpu_threads: int = 0,
    encoder_context: Literal["adaptive", "full"] = "adaptive",
    redo_failures: bool = True,
) -> Transcriber:
    """Load a CTranslate2 Whisper model, stepping down compute types the device refuses.

    `redo_failures=False` keeps a shortened window's first decoding even where it shows
    a failure sign (live passes: a second decoding would double a pass, and a pass
    that fails is dropped and followed by the next one a second later anyway).
    """
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
            model.redo_failures = redo_failures
        except ValueError as exc:  # CTranslate2 raises ValueError for an unsupported type
            last_error = exc
            log.warning("compute_type_unsupported", compute_type=compute_type)
            continue
        except RuntimeError as exc:  # out of device memory, broken files: try a smaller model
            log.warning("model_load_failed", model=name, error=type(exc).__name__)
            raise ModelUnavailableError(f"{name}: {type(exc).__name__}") from exc
        return FasterWhisperTranscriber(model, compute_type=compute_type)
    raise ModelUnavailableError(str(last_error))


def release_memory() -> None:
    """Give freed model memory back to the OS so RSS really falls after an unload.

    Blocking (a full collection, then glibc's trim): callers run it in a thread.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
