"""`whisper-api live`: stream the microphone (or a file at real-time pace) to /v1/realtime.

The microphone is read with PyAV's FFmpeg input devices (ALSA on Linux: `--device
default`), already a dependency, so no audio library is added. Committed words are
printed as they arrive; each completed turn ends its line. The first Ctrl-C ends the
stream cleanly (the turn being spoken is still transcribed); with `--keep` the
server then keeps the session's turns as a task, whose id is printed on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import av
import numpy as np
from av.audio.resampler import AudioResampler

from app.clock import Clock, SystemClock

__all__ = ["LiveRequest", "realtime_url", "run_live"]

RATE = 24000
CHUNK_S = 0.1
# Silence sent after a file, so the server's voice detector ends the last turn.
TRAILING_SILENCE_S = 1.5


@dataclass(frozen=True, slots=True)
class LiveRequest:
    """What `whisper-api live` was asked to do."""

    server: str
    api_key: str | None = None
    file: Path | None = None
    device: str = "default"
    input_format: str = "alsa"
    language: str | None = None
    model: str | None = None
    # Ask the server to keep the session's turns as a task once the stream has ended.
    keep: bool = False


def realtime_url(server: str) -> str:
    """The websocket URL of a server's live route."""
    base = server.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    return base + "/v1/realtime?intent=transcription"


def _pcm_chunks(container: Any) -> Iterator[bytes]:
    """The first audio stream as 100 ms chunks of PCM16 mono at 24 kHz."""
    resampler = AudioResampler(format="s16", layout="mono", rate=RATE)
    step = round(CHUNK_S * RATE) * 2
    pending = b""
    for frame in container.decode(audio=0):
        for out in resampler.resample(frame):
            pending += out.to_ndarray().astype("<i2").tobytes()
        while len(pending) >= step:
            yield pending[:step]
            pending = pending[step:]
    for out in resampler.resample(None):
        pending += out.to_ndarray().astype("<i2").tobytes()
    if pending:
        yield pending


async def _file_chunks(path: Path, clock: Clock) -> AsyncIterator[bytes]:
    """A file's audio at real-time pace (decoding is quick next to the pace)."""
    with av.open(str(path)) as container:
        began = clock.monotonic()
        for index, chunk in enumerate(_pcm_chunks(container)):
            yield chunk
            await clock.sleep(max(0.0, began + (index + 1) * CHUNK_S - clock.monotonic()))
    yield np.zeros(round(TRAILING_SILENCE_S * RATE), dtype="<i2").tobytes()


async def _device_chunks(device: str, input_format: str) -> AsyncIterator[bytes]:
    """A capture device's audio as it is recorded (read in a thread)."""
    container = await asyncio.to_thread(av.open, device, format=input_format)
    chunks = _pcm_chunks(container)
    try:
        while True:
            chunk = await asyncio.to_thread(next, chunks, None)
            if chunk is None:
                return
            yield chunk
    finally:
        container.close()


def _session(request: LiveRequest) -> dict[str, Any]:
    transcription: dict[str, Any] = {"model": request.model or "whisper-1"}
    if request.language:
        transcription["language"] = request.language
    return {
        "type": "session.update",
        "session": {
            "type": "transcription",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": RATE},
                    "transcription": transcription,
                    "turn_detection": {"type": "server_vad"},
                }
            },
        },
    }


class _Printer:
    """Follows the server's events; prints committed words; knows when all turns are done."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = self.completed = self.updates = 0
        self.error: str | None = None
        self.kept_task: str | None = None

    def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "conversation.item.input_audio_transcription.delta":
            self.out.write(str(event.get("delta", "")))
            self.out.flush()
        elif kind == "conversation.item.input_audio_transcription.completed":
            self.completed += 1
            self.out.write("\n")
            self.out.flush()
        elif kind in (
            "conversation.item.input_audio_transcription.failed",
            "x.whisper_api.turn.dropped",  # the detector's turn had no word: nothing to print
        ):
            self.completed += 1
        elif kind == "x.whisper_api.turn.pending":  # sent at once; speech_started waits for words
            self.started += 1
        elif kind == "session.updated":
            self.updates += 1
        elif kind == "x.whisper_api.task.created":
            self.kept_task = str(event.get("task_id"))
        elif kind == "error":
            error = event.get("error", {})
            if error.get("code") != "input_audio_buffer_commit_empty":  # nothing was open
                self.error = str(error.get("message", "unknown error"))

    @property
    def all_done(self) -> bool:
        # The second session.updated answers the update sent after the last audio.
        return self.updates >= 2 and self.completed >= self.started


async def run_live(
    request: LiveRequest, *, out: TextIO = sys.stdout, clock: Clock | None = None
) -> int:
    """Stream, print, and return the exit status (0, or 1 after an error)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    clock = clock or SystemClock()
    headers = {"Authorization": f"Bearer {request.api_key}"} if request.api_key else {}
    source = (
        _file_chunks(request.file, clock)
        if request.file is not None
        else _device_chunks(request.device, request.input_format)
    )
    printer = _Printer(out)
    try:
        async with connect(
            realtime_url(request.server), additional_headers=headers, max_size=None
        ) as socket:
            await socket.send(json.dumps(_session(request)))

            stop = _stop_on_first_interrupt()

            async def send_audio() -> None:
                async for chunk in source:
                    audio = base64.b64encode(chunk).decode()
                    await socket.send(
                        json.dumps({"type": "input_audio_buffer.append", "audio": audio})
                    )
                    if stop.is_set():
                        # Ctrl-C: the turn being spoken is committed and still transcribed.
                        await socket.send(json.dumps({"type": "input_audio_buffer.commit"}))
                        break
                await socket.send(json.dumps({"type": "session.update", "session": {}}))

            sender = asyncio.create_task(send_audio())
            try:
                async for message in socket:
                    printer.handle(json.loads(message))
                    if printer.error is not None or printer.all_done:
                        break
                if request.keep and printer.error is None:
                    await socket.send(json.dumps({"type": "x.whisper_api.session.keep"}))
                    async for message in socket:
                        printer.handle(json.loads(message))
                        if printer.error is not None or printer.kept_task is not None:
                            break
            finally:
                sender.cancel()
    except InvalidStatus as exc:
        print(f"whisper-api live: refused with HTTP {exc.response.status_code}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"whisper-api live: {exc}", file=sys.stderr)
        return 1
    if printer.error is not None:
        print(f"whisper-api live: {printer.error}", file=sys.stderr)
        return 1
    if printer.kept_task is not None:
        url = f"{request.server.rstrip('/')}/api/v1/tasks/{printer.kept_task}"
        print(f"whisper-api live: kept as task {printer.kept_task} ({url})", file=sys.stderr)
    return 0


def _stop_on_first_interrupt() -> asyncio.Event:
    """An event the first Ctrl-C sets (the stream ends cleanly); a second one interrupts."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def first() -> None:
        stop.set()
        loop.remove_signal_handler(signal.SIGINT)

    with contextlib.suppress(NotImplementedError, RuntimeError):  # not on the main thread
        loop.add_signal_handler(signal.SIGINT, first)
    return stop


def main(args: argparse.Namespace) -> int:
    """Run `whisper-api live`."""
    request = LiveRequest(
        server=args.server,
        api_key=args.api_key,
        file=args.file,
        device=args.device,
        input_format=args.input_format,
        language=args.language,
        model=args.model,
        keep=args.keep,
    )
    try:
        return asyncio.run(run_live(request))
    except KeyboardInterrupt:
        return 0
