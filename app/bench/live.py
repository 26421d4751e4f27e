"""The live scenario of `whisper-api bench`: one /v1/realtime session at real-time pace.

A clip is streamed in 100 ms chunks at real-time pace to a fresh server, once
alone and once with a batch upload of the same clip running beside it. For every
committed word the delay is measured on the client: when its word event arrived
minus when the audio up to the word's end had been sent (the server reports word
times in the `x.whisper_api.transcription.words` events). Also reported: WER of
the completed turns against the reference and against the same model offline
(faster-whisper directly, same beam and temperature), and the server's CPU share
(its CPU seconds per wall second and core) while streaming.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.bench.measure import (
    Row,
    clip_path,
    clip_reference,
    cpu_seconds,
    duration,
    word_error_rate,
)
from app.bench.servers import running_server, transcribe_via_http

__all__ = ["LiveRun", "bench_live", "live_rows", "offline_wer"]

CHUNK_S = 0.1
RATE = 24000


@dataclass
class LiveRun:
    """What one streamed session measured."""

    delays: list[float] = field(default_factory=list)
    transcripts: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_share: float = 0.0


def _pcm24(path: Path) -> bytes:
    import av
    from av.audio.resampler import AudioResampler

    resampler = AudioResampler(format="s16", layout="mono", rate=RATE)
    out = bytearray()
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for piece in resampler.resample(frame):
                out += piece.to_ndarray().astype("<i2").tobytes()
    for piece in resampler.resample(None):
        out += piece.to_ndarray().astype("<i2").tobytes()
    return bytes(out)


async def _stream(url: str, pcm: bytes, language: str) -> LiveRun:
    from websockets.asyncio.client import connect

    run = LiveRun()
    ws_url = url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    step = round(CHUNK_S * RATE) * 2
    session = {
        "type": "transcription",
        "audio": {
            "input": {
                "transcription": {"model": "whisper-1", "language": language},
                "turn_detection": {"type": "server_vad"},
            }
        },
    }
    async with connect(ws_url, max_size=None) as socket:
        await socket.send(json.dumps({"type": "session.update", "session": session}))
        began = time.monotonic()

        async def send() -> None:
            for index, start in enumerate(range(0, len(pcm), step)):
                chunk = base64.b64encode(pcm[start : start + step]).decode()
                await socket.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
                await asyncio.sleep(max(0.0, began + (index + 1) * CHUNK_S - time.monotonic()))
            silence = base64.b64encode(b"\0\0" * RATE * 2).decode()
            await socket.send(json.dumps({"type": "input_audio_buffer.append", "audio": silence}))
            await socket.send(json.dumps({"type": "session.update", "session": {}}))

        sender = asyncio.create_task(send())
        counts = {"started": 0, "updated": 0}
        async for message in socket:
            event = json.loads(message)
            kind = event["type"]
            if kind == "x.whisper_api.transcription.words":
                now = time.monotonic()
                for word in event["words"]:
                    sent_at = began + math.ceil(word["end_ms"] / 1000 / CHUNK_S) * CHUNK_S
                    run.delays.append(max(0.0, now - sent_at))
            elif kind == "conversation.item.input_audio_transcription.completed":
                run.transcripts.append(event["transcript"])
            elif kind == "input_audio_buffer.speech_started":
                counts["started"] += 1
            elif kind == "session.updated":
                counts["updated"] += 1
            elif kind == "error":
                raise SystemExit(f"bench: live session error: {event['error']['message']}")
            if counts["updated"] >= 2 and len(run.transcripts) >= counts["started"]:
                break
        await sender
        run.wall_s = time.monotonic() - began
    return run


def _offline_wer(path: Path, model_name: str, language: str, reference: str) -> float:
    """The same model on the whole clip at once (beam 1, temperature 0), for comparison."""
    from app.config import load_settings
    from app.transcription.audio import decode_audio
    from app.transcription.models.loading import load_faster_whisper
    from app.transcription.models.placement import Placement
    from app.transcription.models.sources import ModelSources
    from app.transcription.types import TranscribeOptions

    settings = load_settings({}, log_file="", allow_download=False)
    sources = ModelSources(
        model_dir=settings.model_dir, cache_dir=settings.model_cache_dir, allow_download=False
    )
    placement = Placement(device="cpu", compute_type="int8")
    transcriber = load_faster_whisper(sources.locate(model_name), placement, cpu_threads=1)
    options = TranscribeOptions(language=language, beam_size=1, temperature=0.0)
    transcript = transcriber.transcribe(
        decode_audio(path.read_bytes()), options, lambda _: None, lambda: False
    )
    return word_error_rate(reference, transcript.text)


def bench_live(
    clip: Path,
    reference: str,
    *,
    start_server: Callable[..., Any],
    upload: Callable[[str, str], Any],
    batch_clip: str,
    language: str = "en",
) -> list[dict[str, Any]]:
    """One session alone and one beside a batch upload; one result dict per run."""
    pcm = _pcm24(clip)
    results: list[dict[str, Any]] = []
    with start_server(MAX_LIVE_SESSIONS="1", LOAD_MODEL_ON_STARTUP="1") as (url, pid, _):
        for beside in (False, True):
            batch: dict[str, float] = {}
            worker = threading.Thread(target=_timed_upload, args=(upload, url, batch_clip, batch))
            if beside:
                worker.start()
            cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
            run = asyncio.run(_stream(url, pcm, language))
            cpu = cpu_seconds(pid) - cpu_before
            run.cpu_share = cpu / (time.monotonic() - wall_before) / (os.cpu_count() or 1)
            if beside:
                worker.join()
            delays = sorted(run.delays)
            results.append(
                {
                    "beside_batch": beside,
                    "words": len(delays),
                    "mean_s": sum(delays) / len(delays) if delays else None,
                    "p95_s": delays[min(len(delays) - 1, round(0.95 * (len(delays) - 1)))]
                    if delays
                    else None,
                    "max_s": delays[-1] if delays else None,
                    "wer": word_error_rate(reference, " ".join(run.transcripts)),
                    "cpu_share": run.cpu_share,
                    "wall_s": run.wall_s,
                    "batch_wall_s": batch.get("wall_s"),
                }
            )
    return results


def _timed_upload(
    upload: Callable[[str, str], Any], url: str, name: str, into: dict[str, float]
) -> None:
    into["wall_s"] = upload(url, name)[0]


def offline_wer(clip: Path, reference: str, model_name: str = "tiny.en") -> float:
    """WER of the live model on the whole clip at once (the live WER's yardstick)."""
    return _offline_wer(clip, model_name, "en", reference)


def live_rows(clip_name: str) -> list[Row]:
    """The live scenario on a fresh server (CPU fallback model base) as table rows."""
    path, text = clip_path(clip_name), clip_reference(clip_name)
    results = bench_live(
        path,
        text,
        start_server=lambda **env: running_server(None, CPU_FALLBACK_MODEL="base", **env),
        upload=transcribe_via_http,
        batch_clip=clip_name,
    )
    yardstick = offline_wer(path, text)
    rows = []
    for result in results:
        extra = {
            "words": result["words"],
            "mean_delay_s": _rounded(result["mean_s"]),
            "cpu_share": round(result["cpu_share"], 2),
            "offline_wer": round(yardstick, 3),
        }
        if result["batch_wall_s"] is not None:
            extra["batch_wall_s"] = round(result["batch_wall_s"], 1)
        rows.append(
            Row(
                scenario="live",
                system="live + batch beside" if result["beside_batch"] else "live alone",
                audio_s=duration(clip_name),
                wall_s=result["wall_s"],
                p50_s=None,
                p95_s=result["p95_s"],
                max_s=result["max_s"],
                wer=result["wer"],
                extra=extra,
            )
        )
    return rows


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
