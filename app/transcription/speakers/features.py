"""The d-vector front-end: 40-band log-mel frames, computed with numpy alone.

The bundled embedder was trained on librosa's ``melspectrogram`` (Slaney mel scale and
area normalisation, periodic Hamming window centred in the FFT frame, no centre padding,
power 2) followed by ``log10(S + 1e-10)``. librosa would pull in scipy and numba, so the
few formulas it applies are reproduced here; a test compares them with values librosa
printed once.
"""

from __future__ import annotations

import functools

import msgspec
import numpy as np
import numpy.typing as npt

__all__ = ["LogMelConfig", "log_mel", "mel_filterbank"]

FloatArray = npt.NDArray[np.float32]

# Slaney's mel scale: linear below 1 kHz, logarithmic above.
_LINEAR_HZ_PER_MEL = 200.0 / 3
_LOG_START_HZ = 1000.0
_LOG_START_MEL = _LOG_START_HZ / _LINEAR_HZ_PER_MEL
_LOG_STEP = np.log(6.4) / 27.0


class LogMelConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How an embedder wants its audio turned into frames (the bundled model's defaults)."""

    sample_rate: int = 16_000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 40
    floor: float = 1e-10


def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    linear = hz / _LINEAR_HZ_PER_MEL
    above = _LOG_START_MEL + np.log(np.maximum(hz, _LOG_START_HZ) / _LOG_START_HZ) / _LOG_STEP
    return np.where(hz >= _LOG_START_HZ, above, linear)


def _mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    linear = mel * _LINEAR_HZ_PER_MEL
    above = _LOG_START_HZ * np.exp(_LOG_STEP * (mel - _LOG_START_MEL))
    return np.where(mel >= _LOG_START_MEL, above, linear)


@functools.cache
def mel_filterbank(config: LogMelConfig) -> FloatArray:
    """Triangular Slaney-normalised filters, shape ``(n_mels, n_fft // 2 + 1)``."""
    nyquist = config.sample_rate / 2
    bin_hz = np.linspace(0.0, nyquist, config.n_fft // 2 + 1)
    edges_mel = np.linspace(0.0, float(_hz_to_mel(np.array(nyquist))), config.n_mels + 2)
    edges_hz = _mel_to_hz(edges_mel)
    widths = np.diff(edges_hz)
    ramps = edges_hz[:, None] - bin_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    # Each filter gets unit area, so wide high-frequency bands do not dominate.
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return weights.astype(np.float32)


@functools.cache
def _window(config: LogMelConfig) -> FloatArray:
    """A periodic Hamming window of win_length samples, centred in an n_fft frame."""
    n = np.arange(config.win_length)
    hamming = 0.54 - 0.46 * np.cos(2 * np.pi * n / config.win_length)
    padded = np.zeros(config.n_fft, dtype=np.float32)
    left = (config.n_fft - config.win_length) // 2
    padded[left : left + config.win_length] = hamming
    return padded


def log_mel(audio: FloatArray, config: LogMelConfig) -> FloatArray:
    """``(frames, n_mels)`` log10 mel power of 16 kHz mono audio, one frame per hop.

    Audio shorter than one FFT frame is padded with silence so it still gives a frame.
    """
    samples = np.asarray(audio, dtype=np.float32)
    if len(samples) < config.n_fft:
        samples = np.pad(samples, (0, config.n_fft - len(samples)))
    frames = np.lib.stride_tricks.sliding_window_view(samples, config.n_fft)[:: config.hop_length]
    spectrum = np.fft.rfft(frames * _window(config), axis=-1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    mel = power @ mel_filterbank(config).T
    return np.asarray(np.log10(mel + config.floor), dtype=np.float32)
