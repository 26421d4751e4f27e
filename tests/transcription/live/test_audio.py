"""Live audio in: the 24 kHz resampler and the voice detector's turn events."""

from __future__ import annotations

import numpy as np

from app.transcription.audio import SAMPLE_RATE
from app.transcription.live.audio import (
    VAD_FRAME_SAMPLES,
    PcmResampler,
    Samples,
    TurnDetection,
    VoiceDetector,
)


def pcm_tone(seconds: float, rate: int = 24000) -> bytes:
    """A 440 Hz tone as PCM16 LE."""
    t = np.arange(round(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 440 * t) * 12000).astype("<i2").tobytes()


def test_24khz_pcm_in_odd_sized_chunks_comes_out_as_16khz_float_samples() -> None:
    """One second at 24 kHz, cut at odd byte counts, gives about one second at 16 kHz."""
    pcm = pcm_tone(1.0)
    resampler = PcmResampler()
    parts = [resampler.push(pcm[start : start + 1001]) for start in range(0, len(pcm), 1001)]
    samples = np.concatenate(parts)
    assert samples.dtype == np.float32
    assert abs(len(samples) - SAMPLE_RATE) < 200
    assert 0.3 < float(np.abs(samples).max()) < 0.4


def scripted(pattern: list[float]) -> tuple[VoiceDetector, Samples]:
    """A detector whose scorer replays `pattern` (one probability per frame), and audio for it."""
    replay = iter(pattern)

    def score(samples: Samples) -> list[float]:
        return [next(replay) for _ in range(len(samples) // VAD_FRAME_SAMPLES)]

    detector = VoiceDetector(
        TurnDetection(threshold=0.5, silence_duration_ms=96), score, min_speech_ms=0
    )
    return detector, np.zeros(len(pattern) * VAD_FRAME_SAMPLES, dtype=np.float32)


def test_speech_starts_at_the_first_loud_frame_and_stops_where_the_silence_began() -> None:
    """Three quiet frames (96 ms) after speech end the turn at the first quiet one."""
    detector, audio = scripted([0.1, 0.9, 0.8, 0.2, 0.9, 0.1, 0.1, 0.1, 0.1])
    events = detector.push(audio)
    assert [(e.kind, e.sample // VAD_FRAME_SAMPLES) for e in events] == [
        ("started", 1),
        ("stopped", 5),
    ]
    assert events[0].ms == VAD_FRAME_SAMPLES * 1000 // SAMPLE_RATE


def test_partial_frames_wait_for_the_rest() -> None:
    """Samples that do not fill a frame are scored once the next chunk completes it."""
    detector, audio = scripted([0.9])
    assert detector.push(audio[:100]) == []
    (event,) = detector.push(audio[100:])
    assert event.kind == "started"
    assert detector.in_speech


def test_a_blip_shorter_than_min_speech_opens_no_turn() -> None:
    """Two loud frames then silence: no start; eight loud frames: a start at the first one."""
    replay = iter([0.1, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1] + [0.9] * 8 + [0.1] * 4)

    def score(samples: Samples) -> list[float]:
        return [next(replay) for _ in range(len(samples) // VAD_FRAME_SAMPLES)]

    detector = VoiceDetector(
        TurnDetection(threshold=0.5, silence_duration_ms=96), score, first_sample=1000
    )
    events = detector.push(np.zeros(19 * VAD_FRAME_SAMPLES, dtype=np.float32))
    assert [(e.kind, (e.sample - 1000) // VAD_FRAME_SAMPLES) for e in events] == [
        ("started", 7),
        ("stopped", 15),
    ]
    assert events[0].heard_at == 1000 + 14 * VAD_FRAME_SAMPLES  # 7 loud frames (224 ms) in


def test_the_speech_map_tells_voiced_audio_from_silence() -> None:
    """Frames at or above threshold - 0.15 are voiced; audio not scored yet counts as voiced."""
    replay = iter([0.1, 0.4, 0.2, 0.0])

    def score(samples: Samples) -> list[float]:
        return [next(replay) for _ in range(len(samples) // VAD_FRAME_SAMPLES)]

    detector = VoiceDetector(TurnDetection(threshold=0.5), score)
    detector.push(np.zeros(4 * VAD_FRAME_SAMPLES, dtype=np.float32))
    heard = detector.speech.heard
    assert not heard(0, VAD_FRAME_SAMPLES)
    assert heard(VAD_FRAME_SAMPLES, 2 * VAD_FRAME_SAMPLES)
    assert not heard(2 * VAD_FRAME_SAMPLES, 4 * VAD_FRAME_SAMPLES)
    assert heard(4 * VAD_FRAME_SAMPLES, 5 * VAD_FRAME_SAMPLES)
