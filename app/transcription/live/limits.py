"""How much audio one live session may receive and hold, and the errors past those bounds.

Framework-free. The server's bounds, not the client's: a session's audio as a whole
(MAX_AUDIO_DURATION_S, as for an upload), the open turn (past it the server commits
the turn itself), and the audio waiting for its transcript (past it appends are
refused, so a client far ahead of the model cannot fill the server's memory).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AudioLimitError", "BufferFullError", "LiveLimits"]


@dataclass(frozen=True, slots=True)
class LiveLimits:
    """How much audio one session may receive and hold (the server's, not the client's)."""

    # All the audio of a session (MAX_AUDIO_DURATION_S, as for an upload).
    max_audio_s: float = 4 * 3600.0
    # The open turn's kept audio: past it the server commits the turn itself.
    max_turn_s: float = 30.0
    # Audio waiting for its transcript: past it appends are refused (the audio dropped).
    max_buffered_s: float = 90.0


class AudioLimitError(Exception):
    """The session has received all the audio it may."""

    def __init__(self, limit_s: float) -> None:
        super().__init__(f"this session reached its limit of {limit_s:g} s of audio")
        self.message = str(self)


class BufferFullError(Exception):
    """Too much audio awaits its transcript: this chunk was dropped."""

    def __init__(self, limit_s: float) -> None:
        super().__init__(
            f"more than {limit_s:g} s of audio await their transcript: this chunk was dropped"
        )
        self.message = str(self)
