"""What a job may take (length, time, batching) and what needs no model at all (silence).

Pure rules, shared by the worker and its tests; the worker applies them.
"""

from __future__ import annotations

import msgspec
import numpy as np
import numpy.typing as npt

from app.transcription.jobs import Job
from app.transcription.types import TranscribeOptions, Transcript

__all__ = ["WorkerLimits", "is_digital_silence", "silent_transcript", "time_out"]

# How long past its time limit a job's inference thread may take to notice it must
# stop (it checks between segments) before the worker gives up on that thread.
WATCHDOG_GRACE_S = 60.0
# Peak amplitude below which audio is digital silence (about -100 dBFS): there is
# nothing to transcribe, and Whisper tends to invent text for such input.
SILENCE_PEAK = 1e-5
# Below two windows the batched VAD pipeline has little to batch.
LONG_FORM_MIN_S = 60.0


class WorkerLimits(msgspec.Struct, frozen=True, kw_only=True):
    """How the worker runs jobs (from the settings)."""

    batch_size: int = 1
    batched_inference: str = "auto"  # auto | on | off (BATCHED_INFERENCE)
    max_audio_s: float | None = None
    time_limit_floor_s: float | None = None  # None: no time limit
    time_limit_factor: float = 0.0
    watchdog_grace_s: float = WATCHDOG_GRACE_S

    def time_limit_s(self, audio_s: float) -> float | None:
        """Seconds a job of `audio_s` may decode, or None without a limit."""
        if self.time_limit_floor_s is None:
            return None
        return self.time_limit_floor_s + self.time_limit_factor * audio_s

    def long_form(self, options: TranscribeOptions, audio_s: float) -> TranscribeOptions:
        """BATCHED_INFERENCE: on = always; auto = audio longer than one window twice over."""
        mode = self.batched_inference
        use = mode == "on" or (mode == "auto" and audio_s > LONG_FORM_MIN_S)
        if not use or self.batch_size < 2:
            return options
        return msgspec.structs.replace(options, long_form_batch_size=self.batch_size)


def time_out(job: Job, limit_s: float) -> None:
    """Ask a job to stop because it ran past its time limit (callable from any thread)."""
    if job.cancel_requested:
        return
    job.timed_out = True
    job.cancel_reason = (
        f"the job took longer than its time limit of {limit_s:.1f} s and was stopped "
        "(the limit grows with the audio's length; see JOB_TIMEOUT_MIN_S and JOB_TIMEOUT_FACTOR)"
    )


def is_digital_silence(audio: npt.NDArray[np.float32]) -> bool:
    """Whether the samples are (practically) all zero."""
    # max and -min instead of abs(): no temporary copy of hours of samples.
    return audio.size == 0 or max(float(audio.max()), -float(audio.min())) < SILENCE_PEAK


def silent_transcript(job: Job) -> Transcript:
    """The correct result for digital silence: no text, no segments, without running a model.

    There is no speech to detect a language from: the requested language, else
    English, is reported with probability 0.
    """
    return Transcript(
        text="",
        language=job.options.language or "en",
        language_probability=0.0,
        duration=job.audio_duration,
        segments=[],
    )
