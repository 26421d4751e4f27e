"""What a live session was asked for: the client's choices and the server's (`LiveConfig`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from app.transcription.live.audio import INPUT_RATE, TurnDetection
from app.transcription.live.noise import NoiseReduction

__all__ = ["CONTEXT_S", "LiveConfig"]

# Audio a pass hears beyond each edge of its turn (a word cut there is heard whole).
CONTEXT_S = 0.6


@dataclass(frozen=True, slots=True)
class LiveConfig:
    """What the client chose for its session (`session.update`)."""

    language: str | None = None
    # A catalogue model, or None for the server's live model (LIVE_MODEL).
    model: str | None = None
    prompt: str | None = None
    turn_detection: TurnDetection | None = field(default_factory=TurnDetection)
    input_rate: int = INPUT_RATE
    noise_reduction: NoiseReduction | None = None
    pass_interval_s: float = 0.75
    # Until a turn's first word is committed: its first words sooner, at the cost of a
    # pass or two more on a second of audio (cheap).
    first_pass_interval_s: float = 0.5
    trim_after_s: float = 20.0
    # Audio a pass hears beyond each edge of its turn (the server's choice, not the client's).
    context_s: float = CONTEXT_S
    # A model whose pass over a finished turn gives its completed text (LIVE_FINAL_MODEL).
    final_model: str | None = None

    @property
    def final_config(self) -> LiveConfig:
        """The settings of a turn's final pass (with `final_model`, when there is one)."""
        return dataclasses.replace(self, model=self.final_model or self.model)
