"""Streaming clips to /v1/realtime with the official OpenAI SDK, for the live tests."""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.audio.resampler import AudioResampler
from openai import AsyncOpenAI

RATE = 24000
CHUNK_S = 0.1


def clip_pcm24(path: Path) -> bytes:
    """A clip as the Realtime API wants it: PCM16 LE mono at 24 kHz."""
    resampler = AudioResampler(format="s16", layout="mono", rate=RATE)
    parts: list[np.ndarray[Any, Any]] = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            parts.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
    parts.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    return np.concatenate(parts).astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    """PCM16 silence."""
    return b"\0\0" * round(seconds * RATE)


@dataclass
class LiveRun:
    """What a streamed session gave back, with the monotonic time of each event."""

    events: list[tuple[float, Any]] = field(default_factory=list)
    audio_sent_at: float = 0.0  # when the last chunk of speech was sent

    def of_type(self, kind: str) -> list[Any]:
        """The events of one type, in order."""
        return [event for _, event in self.events if event.type == kind]

    def times(self, kind: str) -> list[float]:
        """When the events of one type arrived."""
        return [at for at, event in self.events if event.type == kind]

    @property
    def transcripts(self) -> list[str]:
        """Each completed turn's transcript."""
        return [e.transcript for e in self.of_type(COMPLETED)]


DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"


def transcription_session(
    *, turn_detection: dict[str, Any] | None, language: str = "en"
) -> dict[str, Any]:
    """A GA `session.update` body for a transcription session."""
    return {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": RATE},
                "transcription": {"model": "whisper-1", "language": language},
                "turn_detection": turn_detection,
            }
        },
    }


async def stream(
    url: str,
    api_key: str,
    pcm: bytes,
    *,
    session: dict[str, Any],
    speed: float = 1.0,
    trailing: bytes = b"",
    commit: bool = False,
    turns: int | None = None,
    timeout_s: float = 240,
) -> LiveRun:
    """Send `pcm` in 100 ms chunks at `speed` x real time, then `trailing` at once.

    Collects every server event until `turns` turns are complete, or (without
    `turns`) until all audio is sent and every committed turn is complete, or an
    error. With `commit`, the buffer is committed by hand after the audio.
    """
    client = AsyncOpenAI(base_url=url + "/v1", api_key=api_key, max_retries=0)
    run = LiveRun()
    step = round(CHUNK_S * RATE) * 2
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as connection:
        await connection.session.update(session=session)  # type: ignore[arg-type]

        async def send_audio() -> None:
            began = time.monotonic()
            for index, start in enumerate(range(0, len(pcm), step)):
                chunk = base64.b64encode(pcm[start : start + step]).decode()
                await connection.input_audio_buffer.append(audio=chunk)
                due = began + (index + 1) * CHUNK_S / speed
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            run.audio_sent_at = time.monotonic()
            if trailing:
                await connection.input_audio_buffer.append(
                    audio=base64.b64encode(trailing).decode()
                )
            if commit:
                await connection.input_audio_buffer.commit()
            # Events are handled in order: its answer says all audio before it was seen.
            await connection.session.update(session={"type": "transcription"})

        sender = asyncio.create_task(send_audio())
        try:
            async with asyncio.timeout(timeout_s):
                async for event in connection:
                    run.events.append((time.monotonic(), event))
                    if event.type == "error" or _finished(run, turns):
                        break
        finally:
            sender.cancel()
    return run


def _finished(run: LiveRun, turns: int | None) -> bool:
    completed = len(run.of_type(COMPLETED))
    if turns is not None:
        return completed >= turns
    # The second session.updated answers the update sent after the last audio.
    all_seen = len(run.of_type("session.updated")) >= 2
    # Every turn the detector opened is told at once (pending); it ends completed, or
    # dropped when it had no word (then it was never announced).
    pending = len(run.of_type("x.whisper_api.turn.pending"))
    dropped = len(run.of_type("x.whisper_api.turn.dropped"))
    committed = len(run.of_type("input_audio_buffer.committed"))
    return all_seen and completed >= committed and completed + dropped >= pending
