"""Which turns a client hears of: a turn the detector opened is announced once it has words.

Framework-free. The voice detector opens a turn on anything that sounds like a
voice (a knock, a cough, a burst of noise), and only Whisper's passes and the
invented-word filters tell whether anything was said. OpenAI's events promise an
item: `speech_started` names the item "created when speech stops", `committed`
creates it and `completed` gives its transcript. So that no item ends with an
empty transcript, `Announcer` holds the OpenAI events of a turn the detector
opened (`SpeechStarted`, `SpeechStopped`, `Committed`) until the turn has a word
(its first `Delta`, or a non-empty `Completed`); a turn that completes without
one is dropped, never announced. A turn the client committed (or the length cap
cut) is announced at its commit: the client asked for it.

The server's own clients (the page, the CLI) still learn of a turn at once from
`TurnPending` and of a dropped one from `TurnDropped` (`x.whisper_api.*` events,
which OpenAI clients pass by), so they know when every turn has ended. Events go
out in the audio's order: a turn's are held while an earlier turn is undecided.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from app.transcription.live.events import (
    Cleared,
    Committed,
    Completed,
    Delta,
    LiveEvent,
    SpeechStarted,
    SpeechStopped,
    TurnDropped,
    TurnFailed,
    TurnPending,
)

__all__ = ["Announcer"]

Emit = Callable[[LiveEvent], Awaitable[None]]


@dataclass(slots=True)
class _Turn:
    """A turn the detector opened: its held events, and whether it has been decided."""

    item_id: str
    held: list[LiveEvent] = field(default_factory=list)
    stopped: bool = False  # the detector ended it (so its commit does not announce it)
    committed: bool = False
    confirmed: bool = False  # it has words (or failed, or a client committed it)
    done: bool = False  # completed, failed or dropped: no event of it will follow


class Announcer:
    """Wraps a session's `emit` (see the module docstring); call it with each event."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._turns: list[_Turn] = []  # in the audio's order, until sent and done
        self._last_item: str | None = None  # the last item announced as committed

    async def __call__(self, event: LiveEvent) -> None:
        if isinstance(event, Cleared):
            await self._cleared()
            await self._emit(event)
            return
        item_id = getattr(event, "item_id", None)
        if isinstance(event, SpeechStarted):
            self._turns.append(_Turn(event.item_id))
            await self._emit(TurnPending(event.item_id, event.audio_start_ms))
        turn = self._find(item_id)
        if turn is None:  # a turn opened without the detector: announced as it goes
            await self._send(event)
            return
        self._note(turn, event)
        turn.held.append(event)
        await self._flush()

    def _find(self, item_id: str | None) -> _Turn | None:
        return next((turn for turn in self._turns if turn.item_id == item_id), None)

    @staticmethod
    def _note(turn: _Turn, event: LiveEvent) -> None:
        """What `event` tells about its turn."""
        match event:
            case SpeechStopped():
                turn.stopped = True
            case Committed():
                turn.committed = True
                turn.confirmed |= not turn.stopped  # the client committed it, or the cap
            case Delta():
                turn.confirmed = True
            case Completed(transcript=text):
                turn.confirmed |= bool(text)
                turn.done = True
            case TurnFailed():
                turn.confirmed = turn.done = True

    async def _flush(self) -> None:
        """Send what may go out: the oldest turns' events, once each is decided."""
        while self._turns:
            turn = self._turns[0]
            if turn.confirmed:
                held, turn.held = turn.held, []
                for event in held:
                    await self._send(event)
            elif turn.done:  # completed without a word: never announced
                await self._emit(TurnDropped(turn.item_id))
                turn.held = []
            if not turn.done or turn.held:
                return
            self._turns.pop(0)

    async def _cleared(self) -> None:
        """The open turn's audio was dropped: so is the turn, if it was never announced."""
        for turn in [turn for turn in self._turns if not turn.committed]:
            self._turns.remove(turn)
            if turn.confirmed:
                for event in turn.held:
                    await self._send(event)
            else:
                await self._emit(TurnDropped(turn.item_id))

    async def _send(self, event: LiveEvent) -> None:
        if isinstance(event, Committed):
            # The item before it is the last one announced (a dropped turn is no item).
            event = dataclasses.replace(event, previous_item_id=self._last_item)
            self._last_item = event.item_id
        await self._emit(event)
