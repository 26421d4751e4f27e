"""The 40-band log-mel front-end against values printed once by librosa 0.11."""

from __future__ import annotations

import numpy as np
import pytest

from app.transcription.speakers.features import LogMelConfig, log_mel, mel_filterbank

# librosa.feature.melspectrogram(y, sr=16000, n_fft=512, win_length=400, hop_length=160,
# n_mels=40, window="hamming", center=False, power=2.0), then log10(S + 1e-10).
LIBROSA_VALUES = {
    (0, 0): -3.0612611770629883,
    (0, 5): -0.24491426348686218,
    (3, 12): -0.5657211542129517,
    (10, 20): -1.2049429416656494,
    (15, 30): -5.006604194641113,
    (21, 39): -5.883354663848877,
}


def _chirp() -> np.ndarray:
    seconds = np.arange(4000) / 16_000
    return (0.1 * np.sin(2 * np.pi * (100 * seconds + 8000 * seconds**2))).astype(np.float32)


def test_log_mel_matches_librosa() -> None:
    """A chirp's log-mel frames equal librosa's to float32 precision, one frame per hop."""
    features = log_mel(_chirp(), LogMelConfig())
    assert features.shape == (22, 40)
    for (frame, band), expected in LIBROSA_VALUES.items():
        assert features[frame, band] == pytest.approx(expected, abs=1e-4)


def test_filters_are_triangles_of_unit_area() -> None:
    """Slaney normalisation: every filter's weights times the bin width sum to about 1."""
    config = LogMelConfig()
    bank = mel_filterbank(config)
    bin_hz = config.sample_rate / config.n_fft
    areas = bank.sum(axis=1) * bin_hz
    assert bank.shape == (40, 257)
    assert np.all(bank >= 0)
    assert np.allclose(areas[5:], 1.0, atol=0.1)


def test_audio_shorter_than_a_frame_gives_one_frame() -> None:
    """A clip shorter than n_fft is padded with silence rather than failing."""
    assert log_mel(np.ones(100, dtype=np.float32), LogMelConfig()).shape == (1, 40)
