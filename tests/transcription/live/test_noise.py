"""Live noise reduction: FFmpeg's filters lower steady noise and keep speech, sample for sample."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from app.transcription.audio import decode_audio
from app.transcription.live.noise import NoiseFilter
from tests.conftest import shared_clip

CHUNK = 2400  # 150 ms, as a browser sends them
LAG = 400  # the denoiser's 25 ms window


def filtered(kind: str, samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """`samples` through a fresh filter, in live-sized chunks."""
    noise_filter = NoiseFilter(kind)  # type: ignore[arg-type]
    parts = [noise_filter.push(samples[i : i + CHUNK]) for i in range(0, len(samples), CHUNK)]
    return np.concatenate(parts)


def white_noise(seconds: float, level: float) -> npt.NDArray[np.float32]:
    """Steady hiss of `level` RMS."""
    return (np.random.default_rng(7).standard_normal(int(16000 * seconds)) * level).astype(
        np.float32
    )


@pytest.mark.parametrize("kind", ["near_field", "far_field"])
def test_every_sample_comes_out(kind: str) -> None:
    """Chunks of any size come out as long as they went in: turn times stay true."""
    noise = white_noise(2.0, 0.003)
    noise_filter = NoiseFilter(kind)  # type: ignore[arg-type]
    sizes = [len(noise_filter.push(noise[i : i + 777])) for i in range(0, len(noise), 777)]
    assert sum(sizes) == len(noise)
    assert len(noise_filter.push(np.zeros(0, dtype=np.float32))) == 0


@pytest.mark.parametrize("kind", ["near_field", "far_field"])
def test_steady_noise_is_lowered(kind: str) -> None:
    """After a second to learn it, room hiss comes out at least 3 dB quieter."""
    noise = white_noise(6.0, 0.003)
    out = filtered(kind, noise)
    change_db = 20 * np.log10(out[32000:].std() / noise[32000:].std())
    assert change_db < -3.0


def test_far_field_filters_harder_than_near_field() -> None:
    """A microphone across the room gets the stronger reduction."""
    noise = white_noise(6.0, 0.003)
    near, far = filtered("near_field", noise), filtered("far_field", noise)
    assert far[32000:].std() < near[32000:].std()


@pytest.mark.parametrize("kind", ["near_field", "far_field"])
def test_speech_comes_through_as_without_the_noise(kind: str) -> None:
    """jfk with hiss added comes out like jfk alone through the same filter: speech is kept."""
    speech = decode_audio(shared_clip("en_jfk.flac").read_bytes())
    noisy = speech + white_noise(len(speech) / 16000, 0.003)
    from_noisy, from_clean = filtered(kind, noisy), filtered(kind, speech)
    assert np.corrcoef(from_noisy, from_clean)[0, 1] > 0.97
    # Still the speech itself, 25 ms later (the high-pass only drops what is below a voice).
    assert np.corrcoef(from_clean[LAG:], speech[:-LAG])[0, 1] > 0.9
