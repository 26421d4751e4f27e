"""The live scenarios of `whisper-api bench --only live`: /v1/realtime sessions, measured.

Each scenario is audio made of parts (clips of ../shared/audio and silences),
streamed in 100 ms chunks to a fresh server with server VAD at OpenAI's defaults,
then stopped the way the page's Stop with Keep does (commit, keep). Measured on
the client, from the events' arrival times:

- word delay: when a committed word arrived minus when the audio up to its end
  had been sent (word times come in `x.whisper_api.transcription.words`); mean
  and p95;
- first-word delay: for each utterance, when its first committed word arrived
  minus when the audio where the speaker starts had been sent; mean;
- WER of the completed turns against the reference, and WER of the same live
  model offline on the same audio (whole, beam 1, temperature 0): the yardstick;
- invented words: words completed in a scenario that has no speech at all
  (silence and room noise, streamed at 10x real time);
- turns out of order: completed turns whose words start before the previous
  completed turn's, or whose completion order differs from the commit order;
- keep: seconds from the last audio sent to the kept task's id.

"read speech" also runs once with batch uploads beside it, one after another for as long
as the stream lasts (the 120 s talk takes a fraction of the 55 s stream to decode).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.bench.measure import JFK, SHORT, Row, clip_path, clip_reference, word_error_rate
from app.bench.servers import running_server, transcribe_via_http

__all__ = [
    "LiveRun",
    "Scenario",
    "live_rows",
    "live_table",
    "scenarios",
    "spoken",
    "stream_scenario",
]

CHUNK_S = 0.1
RATE = 24000
# The held-out read clips: the same eight short clips the other scenarios use.
READ_SPEECH = tuple(SHORT)
NOISE_MINUTES = 5.0


@dataclass(frozen=True)
class Scenario:
    """Audio to stream (PCM16 at 24 kHz), its reference, where each utterance's speech begins."""

    name: str
    pcm: bytes
    reference: str
    speech_starts_s: tuple[float, ...]
    speed: float = 1.0


@dataclass
class LiveRun:
    """What one streamed session gave back."""

    delays: list[float] = field(default_factory=list)
    first_word_delays: list[float] = field(default_factory=list)
    transcripts: list[str] = field(default_factory=list)
    out_of_order: int = 0
    keep_s: float | None = None
    wall_s: float = 0.0


def _pcm24(name: str) -> np.ndarray[Any, Any]:
    import av
    from av.audio.resampler import AudioResampler

    resampler = AudioResampler(format="s16", layout="mono", rate=RATE)
    parts: list[np.ndarray[Any, Any]] = []
    with av.open(str(clip_path(name))) as container:
        for frame in container.decode(audio=0):
            parts.extend(piece.to_ndarray().reshape(-1) for piece in resampler.resample(frame))
    parts.extend(piece.to_ndarray().reshape(-1) for piece in resampler.resample(None))
    return np.concatenate(parts).astype(np.int16)


def _speech_onset_s(samples: np.ndarray[Any, Any]) -> float:
    """Where a clip's speech begins: its first 30 ms louder than a tenth of its loudest."""
    window = round(0.03 * RATE)
    frames = samples[: len(samples) // window * window].astype(np.float32).reshape(-1, window)
    loudness = np.sqrt((frames**2).mean(axis=1))
    return float(np.argmax(loudness > 0.1 * loudness.max()) * window / RATE)


def spoken(name: str, clips: tuple[str, ...], gap_s: float) -> Scenario:
    """The clips one after another with `gap_s` of silence between them."""
    gap = np.zeros(round(gap_s * RATE), dtype=np.int16)
    parts: list[np.ndarray[Any, Any]] = []
    starts: list[float] = []
    at = 0
    for index, clip in enumerate(clips):
        samples = _pcm24(clip)
        if index:
            parts.append(gap)
            at += len(gap)
        starts.append(at / RATE + _speech_onset_s(samples))
        parts.append(samples)
        at += len(samples)
    reference = " ".join(clip_reference(clip).strip() for clip in clips)
    return Scenario(name, np.concatenate(parts).tobytes(), reference, tuple(starts))


def room_noise(seconds: float, seed: int = 27) -> bytes:
    """Silence with a room in it: hiss, a fan's hum, and now and then a knock or a click."""
    rng = np.random.default_rng(seed)
    count = round(seconds * RATE)
    t = np.arange(count) / RATE
    audio = rng.normal(0.0, 0.003, count) + 0.01 * np.sin(2 * np.pi * 100 * t)
    for at in rng.uniform(0, seconds - 0.2, size=round(seconds / 6)):
        start = round(at * RATE)
        length = round(rng.uniform(0.01, 0.12) * RATE)
        decay = np.exp(-np.arange(length) / (0.02 * RATE))
        audio[start : start + length] += rng.normal(0.0, 0.2, length) * decay
    quiet = np.zeros(round(seconds / 2 * RATE))  # the first half: digital silence
    audio[: len(quiet)] = quiet
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()


def scenarios() -> list[Scenario]:
    """jfk twice, the eight held-out read utterances in a row, and five minutes without speech."""
    noise = Scenario("silence and room noise", room_noise(NOISE_MINUTES * 60), "", (), 10.0)
    return [
        spoken("jfk twice", (JFK, JFK), gap_s=1.0),
        spoken("read speech", READ_SPEECH, gap_s=1.0),
        noise,
    ]


async def stream_scenario(url: str, scenario: Scenario, language: str = "en") -> LiveRun:
    """Stream one scenario, then commit and keep; what the client measured."""
    from websockets.asyncio.client import connect

    run = LiveRun()
    ws_url = url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    step = round(CHUNK_S * RATE) * 2
    pace = CHUNK_S / scenario.speed
    session = {
        "type": "transcription",
        "audio": {
            "input": {
                "transcription": {"model": "whisper-1", "language": language},
                "turn_detection": {"type": "server_vad"},
            }
        },
    }
    committed: list[str] = []
    first_starts: dict[str, float] = {}
    completed: list[str] = []
    pending_firsts = list(scenario.speech_starts_s)
    async with connect(ws_url, max_size=None) as socket:
        await socket.send(json.dumps({"type": "session.update", "session": session}))
        began = time.monotonic()
        sent_until = {"at": 0.0}

        def sent_at(audio_s: float) -> float:
            """When the chunk holding `audio_s` of the scenario had been sent."""
            return began + (int(audio_s / CHUNK_S) + 1) * pace

        async def send() -> None:
            for index, start in enumerate(range(0, len(scenario.pcm), step)):
                chunk = base64.b64encode(scenario.pcm[start : start + step]).decode()
                await socket.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
                await asyncio.sleep(max(0.0, began + (index + 1) * pace - time.monotonic()))
            sent_until["at"] = time.monotonic()
            await socket.send(json.dumps({"type": "input_audio_buffer.commit"}))
            await socket.send(json.dumps({"type": "x.whisper_api.session.keep"}))

        sender = asyncio.create_task(send())
        async for message in socket:
            event, now = json.loads(message), time.monotonic()
            kind = event["type"]
            if kind == "x.whisper_api.transcription.words" and event["words"]:
                for word in event["words"]:
                    run.delays.append(max(0.0, now - sent_at(word["end_ms"] / 1000)))
                start_s = event["words"][0]["start_ms"] / 1000
                first_starts.setdefault(event["item_id"], start_s)
                while pending_firsts and start_s >= pending_firsts[0] - 0.5:
                    run.first_word_delays.append(max(0.0, now - sent_at(pending_firsts.pop(0))))
            elif kind == "input_audio_buffer.committed":
                committed.append(event["item_id"])
            elif kind == "conversation.item.input_audio_transcription.completed":
                completed.append(event["item_id"])
                if event["transcript"]:
                    run.transcripts.append(event["transcript"])
            elif kind == "x.whisper_api.task.created" or (
                kind == "error" and event["error"]["code"] == "nothing_to_keep"
            ):
                if kind != "error":
                    run.keep_s = now - sent_until["at"]
                break
            elif kind == "error" and event["error"]["code"] != "input_audio_buffer_commit_empty":
                raise SystemExit(f"bench: live session error: {event['error']['message']}")
        await sender
        run.wall_s = time.monotonic() - began
    run.out_of_order = _out_of_order(committed, completed, first_starts)
    return run


def _out_of_order(committed: list[str], completed: list[str], starts: dict[str, float]) -> int:
    """Completed turns out of the audio's order (by commit order, and by their words' times)."""
    order = [item for item in committed if item in completed]
    misplaced = sum(1 for done, expected in zip(completed, order, strict=False) if done != expected)
    times = [starts[item] for item in completed if item in starts]
    backwards = sum(1 for before, after in itertools.pairwise(times) if after < before)
    return misplaced + backwards


def offline_wer(
    scenario: Scenario, model_name: str, language: str = "en", beam_size: int = 1
) -> float:
    """A model on the scenario's whole audio at once (beam 1, temperature 0: the live
    decoding; beam 5 with the temperature ladder: how an upload is transcribed)."""
    from app.config import load_settings
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
    pcm = np.frombuffer(scenario.pcm, dtype=np.int16).astype(np.float32) / 32768.0
    audio = np.interp(np.arange(0, len(pcm), RATE / 16000), np.arange(len(pcm)), pcm).astype(
        np.float32
    )
    options = (
        TranscribeOptions(language=language, beam_size=1, temperature=0.0)
        if beam_size == 1
        else TranscribeOptions(language=language, beam_size=beam_size)
    )
    transcript = transcriber.transcribe(audio, options, lambda *_: None, lambda: False)
    return word_error_rate(scenario.reference, transcript.text)


def _row(
    scenario: Scenario, run: LiveRun, system: str, yardstick: tuple[float, float] | None
) -> Row:
    delays = sorted(run.delays)
    p95 = delays[min(len(delays) - 1, round(0.95 * (len(delays) - 1)))] if delays else None
    firsts = run.first_word_delays
    words = len(" ".join(run.transcripts).split())
    extra: dict[str, Any] = {
        "words": words,
        "mean_delay_s": _rounded(sum(delays) / len(delays) if delays else None),
        "first_word_s": _rounded(sum(firsts) / len(firsts) if firsts else None),
        "out_of_order": run.out_of_order,
        "keep_s": _rounded(run.keep_s),
    }
    if scenario.reference:
        extra["offline_wer"] = None if yardstick is None else round(yardstick[0], 3)
        extra["offline_wer_beam5"] = None if yardstick is None else round(yardstick[1], 3)
    else:
        extra["invented_words"] = words
    audio_s = len(scenario.pcm) / 2 / RATE
    return Row(
        scenario=f"live: {scenario.name}",
        system=system,
        audio_s=round(audio_s, 1),
        wall_s=run.wall_s,
        p50_s=None,
        p95_s=p95,
        max_s=delays[-1] if delays else None,
        wer=word_error_rate(scenario.reference, " ".join(run.transcripts))
        if scenario.reference
        else None,
        extra=extra,
    )


def live_rows(
    url: str | None = None,
    *,
    start_server: Callable[..., Any] = running_server,
    beside_clip: str = "en_longform_tedlium_120s.flac",
    model_name: str = "tiny.en",
    final_model: str | None = None,
) -> list[Row]:
    """Every scenario on a fresh server (each alone; read speech also beside a batch upload).

    `final_model`: the server's LIVE_FINAL_MODEL (set on the server started here; say
    it for a `url`'s): the yardstick is then that model offline, since its text is
    what the completed turns hold.
    """
    rows: list[Row] = []
    env = {"MAX_LIVE_SESSIONS": "1", "LOAD_MODEL_ON_STARTUP": "1", "CPU_FALLBACK_MODEL": "base"}
    env |= {"LIVE_FINAL_MODEL": final_model} if final_model else {}
    writer = final_model or model_name
    with start_server(url, **env) as (base, _, _):
        for scenario in scenarios():
            yardstick = (
                (offline_wer(scenario, writer), offline_wer(scenario, writer, beam_size=5))
                if scenario.reference
                else None
            )
            run = asyncio.run(stream_scenario(base, scenario))
            rows.append(_row(scenario, run, "live alone", yardstick))
            if scenario.name == "read speech":
                stop = threading.Event()
                worker = threading.Thread(target=_batch_beside, args=(base, beside_clip, stop))
                worker.start()
                run = asyncio.run(stream_scenario(base, scenario))
                stop.set()
                worker.join()
                rows.append(_row(scenario, run, "live + batch beside", yardstick))
    return rows


def _batch_beside(base: str, clip: str, stop: threading.Event) -> None:
    """Upload `clip` again and again until `stop` is set: a batch job beside the whole stream."""
    while not stop.is_set():
        transcribe_via_http(base, clip)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def live_table(rows: list[Row]) -> str:
    """The live rows as one table of issue 27's figures (docs/benchmarks.md's columns)."""

    def cell(value: Any, unit: str = "") -> str:
        if value is None:
            return ""
        return f"{100 * value:.1f} %" if unit == "%" else f"{value:.2f} s"

    header = (
        "| scenario | run | WER | offline WER (beam 1 / 5) | first word | mean delay | p95 "
        "| invented | out of order | keep |"
    )
    lines = [header, "|" + "---|" * 10]
    for row in rows:
        extra = row.extra
        offline = (
            f"{cell(extra.get('offline_wer'), '%')} / {cell(extra.get('offline_wer_beam5'), '%')}"
            if "offline_wer" in extra
            else ""
        )
        cells = [
            row.scenario.removeprefix("live: "),
            row.system.removeprefix("live").strip(),
            cell(row.wer, "%"),
            offline,
            cell(extra.get("first_word_s")),
            cell(extra.get("mean_delay_s")),
            cell(row.p95_s),
            str(extra.get("invented_words", "")),
            str(extra.get("out_of_order", "")),
            cell(extra.get("keep_s")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
