"""Noise reduction for live audio (the Realtime session's `noise_reduction`), by FFmpeg's filters.

OpenAI's `noise_reduction` names the microphone, not an algorithm: `near_field` for a
close-talking one (headset, phone), `far_field` for one across a room (laptop,
conference table). Both run FFmpeg's `highpass` (rumble, handling and mains hum
below speech) and `afftdn` (an FFT denoiser that tracks the noise floor as it
changes) through PyAV's filter graph, already a dependency; a far microphone hears
more of the room, so it is filtered harder. The filtered audio feeds both the
voice detector and the transcription, as OpenAI describes. Chunk by chunk, in
memory, nothing kept beyond the filters' own state.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Literal

import av
import numpy as np
import numpy.typing as npt
from av.audio.frame import AudioFrame

from app.transcription.audio import SAMPLE_RATE

__all__ = ["NOISE_REDUCTIONS", "NoiseFilter", "NoiseReduction"]

Samples = npt.NDArray[np.float32]
NoiseReduction = Literal["near_field", "far_field"]
# (high-pass corner in Hz, afftdn's reduction in dB) per microphone kind.
NOISE_REDUCTIONS: dict[str, tuple[int, int]] = {"near_field": (80, 12), "far_field": (100, 20)}
_WOULD_BLOCK = (av.error.BlockingIOError, av.error.EOFError)


class NoiseFilter:
    """16 kHz float32 samples in, the same number of filtered samples out, chunk by chunk."""

    def __init__(self, kind: NoiseReduction) -> None:
        corner_hz, reduction_db = NOISE_REDUCTIONS[kind]
        self.kind = kind
        self._graph = av.filter.Graph()
        source = self._graph.add_abuffer(
            format="flt", sample_rate=SAMPLE_RATE, layout="mono", time_base=Fraction(1, SAMPLE_RATE)
        )
        # tn=1 with a high adaptivity: follow the noise floor as it changes (a fan
        # starts, a door opens), starting from a typical room's -40 dBFS.
        chain = [
            self._graph.add("highpass", f"f={corner_hz}"),
            self._graph.add("afftdn", f"nr={reduction_db}:nf=-40:tn=1:ad=0.9"),
            self._graph.add("abuffersink"),
        ]
        source.link_to(chain[0])
        chain[0].link_to(chain[1])
        chain[1].link_to(chain[2])
        self._graph.configure()
        self._pts = 0

    def push(self, samples: Samples) -> Samples:
        """As many filtered samples as came in.

        The denoiser works on 25 ms windows, so the output runs 400 samples (25 ms)
        behind the input: a shift far below Whisper's 20 ms timestamp steps' noise.
        """
        if not len(samples):
            return samples
        frame = AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1),
            format="flt",
            layout="mono",
        )
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        self._pts += len(samples)
        self._graph.push(frame)
        out: list[Samples] = []
        while True:
            try:
                filtered = self._graph.pull()
            except _WOULD_BLOCK:
                break
            out.append(filtered.to_ndarray().reshape(-1).astype(np.float32))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
