"""`whisper-api bench --only subtitles`: subtitle norms before and after shaping, and the
cost of timing words for the cues.

Each clip of ../shared/audio (plus the first minute of the TED clip, and the five read
sentences joined into 29.7 s as tests/test_readonly_server.py uploads them) is decoded
once as the server decodes an `/asr?output=srt` job: the service's model class, words
timed for the cues (the decoding itself is the plain one), long audio through the batched
pipeline. It is then rendered as the server renders it: "before" is one cue per Whisper
segment (SUBTITLE_SHAPING=0, the OpenAI routes' default), "after" the shaped default.
Per clip: cues, the longest line (characters), most lines in a cue, the longest cue (s),
the fastest reading speed (characters a second, lines joined by a space) and whether the
cues hold exactly the words of `output=txt`.

The cost table decodes jfk and the joined 29.7 s with and without the cue words (median
of `--runs` after a warm-up), on tiny.en and base, CPU int8.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.bench.measure import AUDIO_DIR, JFK, LONG, clip_path

__all__ = ["SubtitleNorms", "bench_subtitles", "cost_table", "measure_norms", "norms_table"]

Audio = npt.NDArray[np.float32]
SAMPLE_RATE = 16000
JOINED = "joined 29.7 s"
FIRST_MINUTE = "tedlium first 60 s"
JOINED_CLIPS = (
    "en_ljspeech_LJ001-0001.wav",
    "en_ljspeech_LJ001-0003.wav",
    "en_ljspeech_LJ001-0004.wav",
    "en_ls-test-clean_1089-134686-0001.flac",
    "en_ljspeech_LJ001-0002.wav",
)
UNSPACED_LANGUAGES = frozenset({"zh", "ja", "th"})


@dataclass(frozen=True, slots=True)
class SubtitleNorms:
    """The norms one SRT file keeps."""

    cues: int
    longest_line: int
    most_lines: int
    longest_cue_s: float
    fastest_cps: float
    same_words: bool


def measure_norms(srt_text: str, txt_text: str, language: str) -> SubtitleNorms:
    """Read an SRT file back (text only) and measure it against the plain text's words."""
    cues = [_cue(block) for block in srt_text.strip().split("\n\n") if block.strip()]
    lines = [line for _, _, cue_lines in cues for line in cue_lines]
    speeds = [len(" ".join(cue_lines)) / max(end - start, 1e-3) for start, end, cue_lines in cues]
    shown = " ".join(line for line in lines)
    return SubtitleNorms(
        cues=len(cues),
        longest_line=max((len(line) for line in lines), default=0),
        most_lines=max((len(cue_lines) for _, _, cue_lines in cues), default=0),
        longest_cue_s=max((end - start for start, end, _ in cues), default=0.0),
        fastest_cps=max(speeds, default=0.0),
        same_words=_same_words(shown, txt_text, language),
    )


def _cue(block: str) -> tuple[float, float, list[str]]:
    """(start, end, lines) of one SRT block."""
    _, timing, *lines = block.splitlines()
    start, _, end = timing.partition(" --> ")
    return _seconds(start), _seconds(end), lines


def _seconds(stamp: str) -> float:
    hours, minutes, rest = stamp.strip().split(":")
    seconds, _, millis = rest.partition(",")
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def _same_words(shown: str, txt_text: str, language: str) -> bool:
    """The same words in the same order (the same characters where words have no spaces)."""
    if language in UNSPACED_LANGUAGES:
        return "".join(shown.split()) == "".join(txt_text.split())
    return shown.split() == txt_text.split()


# ---------------------------------------------------------------- decoding


def _model(name: str, threads: int) -> Any:
    """The service's transcriber over the bundled `name` model (CPU int8)."""
    from app.config import load_settings
    from app.transcription.cue_timing import CueTimedWhisperModel
    from app.transcription.engine import FasterWhisperTranscriber
    from app.transcription.models import ModelSources

    settings = load_settings()
    path = ModelSources(None, settings.model_cache_dir, allow_download=False).locate(name)
    model = CueTimedWhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=threads)
    return FasterWhisperTranscriber(model, compute_type="int8")


def clip_audio(name: str) -> Audio:
    """A clip of ../shared/audio as 16 kHz mono, or one of the two made from them."""
    from app.transcription.audio import decode_audio

    if name == JOINED:
        return np.concatenate([decode_audio(clip_path(c).read_bytes()) for c in JOINED_CLIPS])
    if name == FIRST_MINUTE:
        return decode_audio(clip_path(LONG).read_bytes())[: 60 * SAMPLE_RATE]
    return decode_audio(clip_path(name).read_bytes())


def _decode(transcriber: Any, audio: Audio, *, cue_words: bool, batch_size: int = 4) -> Any:
    """The transcript of an /asr job (language detected, long audio batched as the server)."""
    from app.transcription.limits import WorkerLimits
    from app.transcription.types import TranscribeOptions

    options = WorkerLimits(batch_size=batch_size).long_form(
        TranscribeOptions(cue_words=cue_words), len(audio) / SAMPLE_RATE
    )
    return transcriber.transcribe(audio, options, lambda *_: None, lambda: False)


def _clips() -> list[str]:
    names = sorted(path.name for path in AUDIO_DIR.iterdir() if path.suffix in (".flac", ".wav"))
    return [*names, FIRST_MINUTE, JOINED]


def bench_subtitles(threads: int, runs: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The norms of every clip before and after shaping (base), and the cue words' cost."""
    from app.transcription import formats
    from app.transcription.types import SubtitleShape, Transcript

    transcriber = _model("base", threads)
    norms: list[dict[str, Any]] = []
    for name in _clips():
        transcript: Transcript = _decode(transcriber, clip_audio(name), cue_words=True)
        txt = formats.render(_wordless(transcript), "txt").decode()
        row: dict[str, Any] = {"clip": name, "seconds": round(transcript.duration, 1)}
        for label, shape in (("before", SubtitleShape()), ("after", SubtitleShape(readable=True))):
            srt = formats.render(transcript, "srt", shape=shape).decode()
            row[label] = measure_norms(srt, txt, transcript.language)
        norms.append(row)
    costs = [
        _cost(model_name, name, threads, runs)
        for model_name in ("tiny.en", "base")
        for name in (JFK, JOINED)
    ]
    return norms, costs


def _wordless(transcript: Any) -> Any:
    import msgspec

    segments = [msgspec.structs.replace(s, words=None) for s in transcript.segments]
    return msgspec.structs.replace(transcript, segments=segments)


def _cost(model_name: str, clip: str, threads: int, runs: int) -> dict[str, Any]:
    """Median wall and CPU seconds of one job without and with cue words (runs interleaved)."""
    transcriber = _model(model_name, threads)
    audio = clip_audio(clip)
    walls: dict[bool, list[float]] = {False: [], True: []}
    cpus: dict[bool, list[float]] = {False: [], True: []}
    _decode(transcriber, audio, cue_words=False)  # warm-up
    for _ in range(runs):
        for cue_words in (False, True):
            job = functools.partial(_decode, transcriber, audio, cue_words=cue_words)
            wall, cpu = _timed(job)
            walls[cue_words].append(wall)
            cpus[cue_words].append(cpu)
    plain, timed = statistics.median(walls[False]), statistics.median(walls[True])
    plain_cpu, timed_cpu = statistics.median(cpus[False]), statistics.median(cpus[True])
    return {
        "model": model_name,
        "clip": clip,
        "plain_s": round(plain, 3),
        "cue_words_s": round(timed, 3),
        "extra_s": round(timed - plain, 3),
        "extra_pct": round(100 * (timed - plain) / plain, 1),
        "plain_cpu_s": round(plain_cpu, 3),
        "cue_words_cpu_s": round(timed_cpu, 3),
        "extra_cpu_pct": round(100 * (timed_cpu - plain_cpu) / plain_cpu, 1),
    }


def _timed(work: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds (all threads) of `work`."""
    began, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - began, time.process_time() - cpu


# ---------------------------------------------------------------- tables


def norms_table(rows: list[dict[str, Any]]) -> str:
    """Before/after per clip, as a Markdown table."""
    lines = [
        "| clip | s | cues before/after | longest line (chars) | most lines | "
        "longest cue (s) | fastest (chars/s) | words = txt |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        before: SubtitleNorms = row["before"]
        after: SubtitleNorms = row["after"]
        lines.append(
            f"| {row['clip']} | {row['seconds']:.1f} | {before.cues} / {after.cues} | "
            f"{before.longest_line} / {after.longest_line} | "
            f"{before.most_lines} / {after.most_lines} | "
            f"{before.longest_cue_s:.2f} / {after.longest_cue_s:.2f} | "
            f"{before.fastest_cps:.1f} / {after.fastest_cps:.1f} | "
            f"{_yes(before.same_words)} / {_yes(after.same_words)} |"
        )
    return "\n".join(lines)


def cost_table(rows: list[dict[str, Any]]) -> str:
    """Seconds per job without and with the cue words (wall, then CPU), as a Markdown table."""
    lines = [
        "| model | clip | wall s plain / cue words | extra | CPU s plain / cue words | extra |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['clip']} | {row['plain_s']:.3f} / {row['cue_words_s']:.3f} "
            f"| {row['extra_s']:+.3f} s ({row['extra_pct']:+.1f} %) | "
            f"{row['plain_cpu_s']:.3f} / {row['cue_words_cpu_s']:.3f} | "
            f"{row['extra_cpu_pct']:+.1f} % |"
        )
    return "\n".join(lines)


def _yes(value: bool) -> str:
    return "yes" if value else "no"
