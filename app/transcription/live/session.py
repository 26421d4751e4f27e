"""One live transcription session: audio in, turns and committed words out.

Framework-free. A transport (`app.api.realtime`) feeds `LiveSession` PCM chunks,
commits and clears, and turns the events it emits (`app.transcription.live.events`)
into its wire format. Turns come from the voice detector (server VAD) or from
explicit commits (`turn_detection: null`). A single runner task re-transcribes the
oldest unfinished turn whenever `pass_interval_s` of new audio has arrived
(`first_pass_interval_s` until its first word is committed), and runs each closed
turn's final pass, so passes of one session never overlap and turns complete in order;
the pass itself is injected (`AsyncPass`; Whisper's is `app.transcription.live.passes`).
Audio lives only in memory and only until its turn is complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable

import numpy as np
import numpy.typing as npt

from app.clock import Clock
from app.transcription.audio import SAMPLE_RATE
from app.transcription.live.audio import (
    PcmResampler,
    SpeechScorer,
    TurnDetection,
    VoiceDetector,
    VoiceEvent,
)
from app.transcription.live.config import LiveConfig
from app.transcription.live.events import (
    Arrivals,
    Cleared,
    Committed,
    Completed,
    Delta,
    LiveEvent,
    LiveObserver,
    SpeechStarted,
    SpeechStopped,
    TurnFailed,
    TurnRecord,
)
from app.transcription.live.limits import AudioLimitError, BufferFullError, LiveLimits
from app.transcription.live.noise import NoiseFilter
from app.transcription.live.transcript import record_of
from app.transcription.live.turn import (
    MAX_REPEATED_WORDS,
    LiveTurn,
    PassResult,
    framed,
    shifted,
    unrepeated,
    without_closing_formula,
)
from app.transcription.types import Word

__all__ = ["AsyncPass", "LiveConfig", "LiveSession"]

Samples = npt.NDArray[np.float32]
AsyncPass = Callable[[Samples, str | None, "LiveConfig"], Awaitable[PassResult]]
"""Run one pass (audio, prompt, the session's settings) off the event loop."""
# Audio kept before speech starts: the prefix padding of any sensible setting, and more.
RECENT_S = 3.0
# A turn shorter than this has nothing Whisper could hear.
MIN_TURN_S = 0.1


class LiveSession:
    """One session's audio, its turns and the runner of their passes (see the module docstring)."""

    def __init__(
        self,
        config: LiveConfig,
        *,
        run_pass: AsyncPass,
        emit: Callable[[LiveEvent], Awaitable[None]],
        clock: Clock,
        scorer: SpeechScorer | None,
        observer: LiveObserver | None = None,
        limits: LiveLimits | None = None,
    ) -> None:
        self.limits = limits or LiveLimits()
        self._run_pass = run_pass
        self._emit = emit
        self._clock = clock
        self._scorer = scorer
        self._observer = observer
        self._resampler = PcmResampler(config.input_rate)
        self._received = 0  # 16 kHz samples received so far
        self._recent: Samples = np.zeros(0, dtype=np.float32)
        self._arrivals = Arrivals()
        self._turns: deque[LiveTurn] = deque()
        self._open: LiveTurn | None = None
        # Audio before this sample belongs to a turn already committed (or was cleared),
        # and whether that turn was cut in mid-speech.
        self._owned_until = 0
        self._cut_last = False
        self._said_last: list[Word] = []  # the last words of the last completed turn
        self._flushing = False  # someone waits for every committed turn: no look-ahead wait
        self._last_item: str | None = None
        self._wake = asyncio.Event()
        self._turn_ended = asyncio.Condition()
        # Completed turns, in this connection's memory only, for a client that asks to keep them.
        self.completed: list[TurnRecord] = []
        self.config = config
        self._detector: VoiceDetector | None = None
        self._listener: VoiceDetector | None = None
        self._denoiser: NoiseFilter | None = None
        self.configure(config)

    @property
    def audio_seconds(self) -> float:
        """Seconds of audio received so far."""
        return self._received / SAMPLE_RATE

    @property
    def busy(self) -> bool:
        """Whether some committed turn still waits for its transcript (an open one does not)."""
        return any(turn.closed for turn in self._turns)

    def configure(self, config: LiveConfig) -> None:
        """New settings; the detector's take effect at once, the rest from the next pass."""
        self.config = config
        if config.noise_reduction is None:
            self._denoiser = None
        elif self._denoiser is None or self._denoiser.kind != config.noise_reduction:
            self._denoiser = NoiseFilter(config.noise_reduction)
        # The detector makes turns (server VAD); without one it still maps the voiced
        # audio, so that words made up in silence are left out of committed turns too.
        detection = config.turn_detection or TurnDetection()
        if self._scorer is not None and (
            self._listener is None or self._listener.detection != detection
        ):
            self._listener = VoiceDetector(detection, self._scorer, first_sample=self._received)
        self._detector = self._listener if config.turn_detection is not None else None

    # -- input

    async def append(self, pcm: bytes) -> None:
        """A chunk of PCM16 from the client.

        Raises `AudioLimitError` once the session has received `max_audio_s`, and
        `BufferFullError` (the chunk is dropped) while more than `max_buffered_s` of
        audio awaits its transcript: a client far ahead of the model is told, and its
        connection keeps being read (so a client that leaves is noticed at once).
        """
        if self._received >= self.limits.max_audio_s * SAMPLE_RATE:
            raise AudioLimitError(self.limits.max_audio_s)
        self._check_room()
        # Resampling, filtering and the detector's model: off the event loop, in one go.
        samples, events = await asyncio.to_thread(self._ingest, pcm)
        if not len(samples):
            return
        first = self._received
        self._arrivals.add(first + len(samples), self._clock.monotonic())
        done = 0
        for event in events:
            # The audio up to where the detector decided belongs to the turn it ends or to
            # the silence before the one it starts.
            cut = min(len(samples), max(done, event.heard_at - first))
            await self._take(samples[done:cut])
            done = cut
            await self._voice(event)
        await self._take(samples[done:])
        self._wake.set()

    def _ingest(self, pcm: bytes) -> tuple[Samples, list[VoiceEvent]]:
        """16 kHz samples of a chunk and the detector's events in them (blocking)."""
        samples = self._resampler.push(pcm)
        if self._denoiser is not None:
            samples = self._denoiser.push(samples)
        events = self._listener.push(samples) if self._listener is not None and len(samples) else []
        if self._detector is None:
            return samples, []
        return samples, events

    async def _take(self, samples: Samples) -> None:
        """Received audio: into the open turn (one opens without a detector), and `_recent`.

        A turn that reaches `max_turn_s` is committed by the server right there and,
        while speech goes on, the next turn starts at exactly that sample.
        """
        cap = round(self.limits.max_turn_s * SAMPLE_RATE)
        while len(samples):
            if self._open is None and self._detector is None:
                self._open_turn(self._received, samples[:0])
            turn = self._open
            room = len(samples) if turn is None else max(1, cap - len(turn.audio))
            piece, samples = samples[:room], samples[room:]
            self._received += len(piece)
            recent_max = int(RECENT_S * SAMPLE_RATE)
            self._recent = np.concatenate([self._recent[-recent_max:], piece[-recent_max:]])[
                -recent_max:
            ]
            if turn is None:
                continue
            turn.append(piece)
            if len(turn.audio) >= cap:
                await self._close(turn)
                if self._detector is not None and self._detector.in_speech:
                    await self._start_turn(self._received)

    def _check_room(self) -> None:
        """Raise `BufferFullError` while more than `max_buffered_s` awaits its transcript."""
        waiting = sum(len(turn.audio) for turn in self._turns)
        if waiting > self.limits.max_buffered_s * SAMPLE_RATE:
            raise BufferFullError(self.limits.max_buffered_s)

    async def commit(self) -> bool:
        """Close the open turn by hand; False when there is too little audio to commit."""
        turn = self._open
        if turn is None or turn.total_samples < MIN_TURN_S * SAMPLE_RATE:
            return False
        await self._close(turn)
        if self._detector is not None:
            self._detector.reset()
        return True

    async def clear(self) -> None:
        """Drop the audio not committed yet."""
        if self._open is not None:
            self._turns.remove(self._open)
            self._open = None
        self._recent = np.zeros(0, dtype=np.float32)
        self._owned_until, self._cut_last = self._received, False
        if self._detector is not None:
            self._detector.reset()
        await self._emit(Cleared())

    async def _voice(self, event: VoiceEvent) -> None:
        if event.kind == "started" and self._open is None:
            detection = self.config.turn_detection or TurnDetection()
            await self._start_turn(event.sample - detection.prefix_padding_ms * SAMPLE_RATE // 1000)
        elif event.kind == "stopped" and self._open is not None:
            turn = self._open
            # The turn keeps the silence that ended it (up to where the detector could
            # tell): a word's soft ending is not cut off, and the next turn starts after it.
            turn.speech_end = event.sample
            keep = min(event.heard_at, self._received) - turn.start_sample
            turn.end_at(keep - round(turn.offset_s * SAMPLE_RATE))
            await self._emit(SpeechStopped(turn.item_id, event.ms))
            await self._close(turn, cut=False)

    async def _start_turn(self, wanted: int) -> None:
        """Open a turn from `wanted` (or the first sample no earlier turn holds) to now."""
        start = max(wanted, self._owned_until, self._received - len(self._recent))
        held = self._received - start
        turn = self._open_turn(start, self._recent[len(self._recent) - held :])
        await self._emit(SpeechStarted(turn.item_id, start * 1000 // SAMPLE_RATE))

    def _open_turn(self, start_sample: int, samples: Samples) -> LiveTurn:
        turn = LiveTurn(
            "item_" + secrets.token_hex(10),
            start_sample=start_sample,
            trim_after_s=self.config.trim_after_s,
        )
        turn.append(samples)
        if start_sample == self._owned_until and self._cut_last:
            # Right where a turn was cut in mid-speech: its passes hear that turn's end.
            before = len(self._recent) - (self._received - start_sample)
            context = round(self.config.context_s * SAMPLE_RATE)
            turn.lookback = self._recent[max(0, before - context) : max(0, before)].copy()
        self._open = turn
        self._turns.append(turn)
        return turn

    async def _close(self, turn: LiveTurn, *, cut: bool = True) -> None:
        """Commit `turn`; `cut`: in mid-speech (a commit, the cap), not in a silence."""
        turn.close()
        turn.cut_after = self._cut_last = cut
        # Real time, not the session's clock: this waits for audio a client sends in real time.
        turn.closed_at = time.monotonic()
        self._owned_until = turn.start_sample + turn.total_samples
        self._open = None
        await self._emit(Committed(turn.item_id, self._last_item))
        self._last_item = turn.item_id
        self._wake.set()

    # -- the passes

    async def run(self) -> None:
        """Run passes until cancelled (one at a time, oldest turn first)."""
        while True:
            turn, wait_s = self._due()
            if turn is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait_s)
                self._wake.clear()
                continue
            await self._pass(turn)

    @property
    def pass_due(self) -> bool:
        """Whether a pass may start now (for a driver that lets each pass finish first)."""
        return self._due()[0] is not None

    def _due(self) -> tuple[LiveTurn | None, float | None]:
        """The turn to pass now, or how long to wait at most for one (None: for new audio).

        The final pass of a turn cut in mid-speech (a commit, the length cap) waits
        until `context_s` of audio after it has arrived, or as long as a real-time
        client takes to send that much; a turn that ended in silence does not wait.
        """
        if not self._turns:
            return None, None
        turn = self._turns[0]
        if turn.closed and (not turn.cut_after or self._flushing):
            return turn, None
        if turn.closed:
            end = turn.start_sample + turn.total_samples
            ahead_s = (self._received - end) / SAMPLE_RATE
            waited_s = time.monotonic() - turn.closed_at
            wait_s = min(self.config.context_s - ahead_s, self.config.context_s - waited_s)
            return (turn, None) if wait_s <= 0 else (None, wait_s)
        config = self.config
        interval = config.pass_interval_s if turn.committed else config.first_pass_interval_s
        if turn.new_audio_s() >= interval:
            return turn, None
        return None, None

    async def _pass(self, turn: LiveTurn) -> None:
        final = turn.closed
        if final and turn.total_samples < MIN_TURN_S * SAMPLE_RATE:
            await self._complete(turn)
            return
        audio = turn.begin_pass()
        span_s = len(audio) / SAMPLE_RATE
        # A word cut by the turn's edges is heard whole: the audio just before it and, for
        # the final pass, whatever has arrived after it (`framed` keeps only its own words).
        lead = turn.lookback if turn.offset_s == 0 else audio[:0]
        ahead = self._after(turn) if final and turn.cut_after else audio[:0]
        if len(lead) or len(ahead):
            audio = np.concatenate([lead, audio, ahead])
        # Only the client's prompt, never earlier turns' text: measured, it made Whisper skip
        # or mishear a turn's first words (docs/benchmarks.md, issue 27).
        prompt = turn.prompt(self.config.prompt)
        began, config = self._clock.monotonic(), self.config
        try:
            result = await self._run_pass(audio, prompt, config.final_config if final else config)
        except Exception as exc:  # the model failed: this turn fails, the session goes on
            self._turns.popleft()
            if self._open is turn:
                self._open = None
            reason = f"transcription failed: {type(exc).__name__}"
            await self._emit(TurnFailed(turn.item_id, reason))
            await self._announce_turn_end()
            return
        if self._observer is not None:
            self._observer.pass_done(self._clock.monotonic() - began)
        lead_s = len(lead) / SAMPLE_RATE
        if lead_s:  # the context's words: those the previous turn did not say are this turn's
            result = dataclasses.replace(
                result, words=unrepeated(result.words, self._said_last, lead_s)
            )
        result = framed(result, lead_s, span_s if len(ahead) else None, lead_s)
        result = self._only_heard(turn, result)
        first = not turn.committed
        newly = turn.apply(result, final=final, revise=final and config.final_model is not None)
        if newly:
            await self._deliver(turn, newly, first=first)
        if final:
            await self._complete(turn)

    def _after(self, turn: LiveTurn) -> Samples:
        """Up to `context_s` of the audio received after a closed turn's end."""
        end, size = (
            turn.start_sample + turn.total_samples,
            round(self.config.context_s * SAMPLE_RATE),
        )
        following = [t for t in self._turns if t.start_sample == end and t.offset_s == 0]
        if following:  # the next turn holds it (`_recent` may have moved on)
            return following[0].audio[:size]
        index = end - (self._received - len(self._recent))
        return (
            self._recent[max(0, index) : max(0, index) + size] if index >= 0 else self._recent[:0]
        )

    def _only_heard(self, turn: LiveTurn, result: PassResult) -> PassResult:
        """The pass's words near audio the detector heard as a voice (all without one)."""
        if self._listener is None:
            return result
        base = turn.start_sample + round(turn.offset_s * SAMPLE_RATE)
        kept = self._listener.speech.said(result.words, base)
        if turn.speech_end is not None:  # nothing starts after the speech that ended the turn
            kept = without_closing_formula(kept, (turn.speech_end - base) / SAMPLE_RATE)
        return result if len(kept) == len(result.words) else dataclasses.replace(result, words=kept)

    async def _deliver(self, turn: LiveTurn, words: list[Word], *, first: bool) -> None:
        text = "".join(word.word for word in words)
        timed = shifted(words, turn.start_sample / SAMPLE_RATE)
        now = self._clock.monotonic()
        if self._observer is not None:
            for word in timed:
                self._observer.word_committed(
                    max(0.0, now - self._arrivals.at(round(word.end * SAMPLE_RATE)))
                )
        await self._emit(Delta(turn.item_id, text.lstrip() if first else text, timed, turn.tail))

    async def _complete(self, turn: LiveTurn) -> None:
        self._turns.popleft()
        self._said_last = turn.committed[-MAX_REPEATED_WORDS:]
        audio_s = turn.total_samples / SAMPLE_RATE
        if self._observer is not None:
            self._observer.turn_completed(audio_s)
        if turn.text:
            self.completed.append(record_of(turn, self.config.language))
        await self._emit(Completed(turn.item_id, turn.text, audio_s))
        self._arrivals.forget_before(self._turns[0].start_sample if self._turns else self._received)
        await self._announce_turn_end()

    async def _announce_turn_end(self) -> None:
        async with self._turn_ended:
            self._turn_ended.notify_all()

    async def settled(self) -> list[TurnRecord]:
        """The completed turns, once every committed turn has its transcript (or failed).

        Not waited for: the open turn, and audio after a cut (the asking client is done).
        """
        self._flushing = True
        self._wake.set()
        try:
            async with self._turn_ended:
                await self._turn_ended.wait_for(lambda: not self.busy)
        finally:
            self._flushing = False
        return list(self.completed)
