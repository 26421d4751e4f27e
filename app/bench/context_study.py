"""`whisper-api bench context`: choose the adaptive encoder context's floor and margin.

Runs every clip of ../shared/audio (all languages) through the bundled `base` model
(CPU int8, beam 5, the service's SinglePassWhisperModel) once with the full 30 s
context and once per candidate (floor, margin), as the service runs it: windows with a
failure sign are redone on the full context (`--no-redo` shows each candidate's own
quality instead). Per candidate it reports, against the full-context run of the same
process:

- English WER against the references (and its change), non-English WER;
- the detected language (auto, read from the same encoder output as the decoding)
  and how many clips differ from the full-context language;
- translation (non-English clips): WER of the texts against the full-context
  translations (over all four clips together);
- segment and word timestamps: mean absolute shift, over clips whose segments/words
  line up one to one, and how many clips do not line up;
- the batched long-form pipeline's WER on the 120 s clip;
- how many windows showed a failure sign (redone, unless `--no-redo`);
- mel frames the encoder saw (redos included) and seconds for the whole candidate
  (noisy on a shared CPU: quality decides, then encoder work).

It prints a Markdown table and the candidate the rule picks: the one with the
least encoder work whose English WER is within +0.3 points of full, every language
unchanged and translation within 5 % WER of full.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.bench.measure import AUDIO_DIR, LONG, base_model_path, word_error_rate

__all__ = ["main"]

CANDIDATES: tuple[tuple[int, int], ...] = (
    (0, 100),
    (0, 200),
    (0, 300),
    (1000, 100),
    (1000, 200),
    (1000, 300),
    (1500, 200),
)
WER_TOLERANCE = 0.003
TRANSLATION_TOLERANCE = 0.05


@dataclass
class ClipRun:
    """What one policy produced for one clip."""

    text: str
    language: str
    segments: list[tuple[float, float]]
    words: list[tuple[str, float, float]]
    translation: str | None = None


@dataclass
class PolicyRun:
    """One policy over every clip."""

    label: str
    floor: int
    margin: int
    clips: dict[str, ClipRun] = field(default_factory=dict)
    batched_long_text: str = ""
    windows_flagged: int = 0
    seconds: float = 0.0
    encoder_frames: int = 0


def _clips(audio_dir: Path) -> list[Path]:
    return sorted(p for p in audio_dir.iterdir() if p.suffix in (".wav", ".flac"))


def _run_clip(model: Any, audio: Any, *, translate: bool) -> ClipRun:
    segments, info = model.transcribe(audio, beam_size=5, word_timestamps=True)
    decoded = list(segments)
    run = ClipRun(
        text="".join(s.text for s in decoded),
        language=str(info.language),
        segments=[(float(s.start), float(s.end)) for s in decoded],
        words=[(str(w.word), float(w.start), float(w.end)) for s in decoded for w in s.words],
    )
    if translate:
        translated, _ = model.transcribe(audio, beam_size=5, task="translate")
        run.translation = "".join(s.text for s in translated)
    return run


def _run_policy(model: Any, policy: Any, audios: dict[str, Any], *, with_long: bool) -> PolicyRun:
    from faster_whisper import BatchedInferencePipeline

    from app.transcription.long_form import AdaptiveBatchedPipeline

    model.encoder_context = policy
    model.windows_redone = 0
    model.encoded_frames = 0
    run = PolicyRun(policy.label, policy.floor_frames, policy.margin_frames)
    began = time.perf_counter()
    for name, audio in audios.items():
        if name == LONG and not with_long:
            continue
        run.clips[name] = _run_clip(model, audio, translate=not name.startswith("en_"))
    if with_long:
        pipeline_class = AdaptiveBatchedPipeline if policy.adaptive else BatchedInferencePipeline
        segments, _ = pipeline_class(model).transcribe(audios[LONG], batch_size=4, beam_size=5)
        run.batched_long_text = "".join(s.text for s in segments)
    run.seconds = time.perf_counter() - began
    run.windows_flagged = model.windows_redone
    run.encoder_frames = model.encoded_frames
    return run


# ---------------------------------------------------------------- comparison


def _shift(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float | None:
    if len(a) != len(b) or not a:
        return None
    pairs = zip(a, b, strict=True)
    return statistics.fmean(abs(x - y) for pa, pb in pairs for x, y in zip(pa, pb, strict=True))


Words = list[tuple[str, float, float]]


def _word_shift(a: Words, b: Words) -> float | None:
    if [w for w, _, _ in a] != [w for w, _, _ in b] or not a:
        return None
    return _shift([(s, e) for _, s, e in a], [(s, e) for _, s, e in b])


@dataclass
class Summary:
    """One row of the study table."""

    label: str
    english_wer: float
    other_wer: float
    language_changes: int
    translation_wer: float
    segment_shift_ms: float
    segment_mismatch: int
    word_shift_ms: float
    word_mismatch: int
    batched_long_wer: float | None
    windows_flagged: int
    seconds: float
    encoder_frames: int


def _mean_ms(shifts: list[float | None]) -> float:
    known = [shift for shift in shifts if shift is not None]
    return 1000 * statistics.fmean(known) if known else 0.0


def _mean_wer(references: dict[str, str], run: PolicyRun, names: list[str]) -> float:
    if not names:
        return 0.0
    return statistics.fmean(word_error_rate(references[n], run.clips[n].text) for n in names)


def _summarise(run: PolicyRun, full: PolicyRun, references: dict[str, str]) -> Summary:
    english = [n for n in run.clips if n.startswith("en_")]
    other = [n for n in run.clips if not n.startswith("en_")]
    seg = [_shift(run.clips[n].segments, full.clips[n].segments) for n in run.clips]
    words = [_word_shift(run.clips[n].words, full.clips[n].words) for n in run.clips]
    translation_wer = (
        word_error_rate(
            " ".join(full.clips[n].translation or "" for n in other),
            " ".join(run.clips[n].translation or "" for n in other),
        )
        if other
        else 0.0
    )
    return Summary(
        label=run.label,
        english_wer=_mean_wer(references, run, english),
        other_wer=_mean_wer(references, run, other),
        language_changes=sum(run.clips[n].language != full.clips[n].language for n in run.clips),
        translation_wer=translation_wer,
        segment_shift_ms=_mean_ms(seg),
        segment_mismatch=sum(s is None for s in seg),
        word_shift_ms=_mean_ms(words),
        word_mismatch=sum(w is None for w in words),
        batched_long_wer=word_error_rate(references[LONG], run.batched_long_text)
        if run.batched_long_text
        else None,
        windows_flagged=run.windows_flagged,
        seconds=run.seconds,
        encoder_frames=run.encoder_frames,
    )


def _acceptable(row: Summary, full: Summary) -> bool:
    return (
        row.english_wer <= full.english_wer + WER_TOLERANCE
        and row.language_changes == 0
        and row.translation_wer <= TRANSLATION_TOLERANCE
    )


def _table(rows: list[Summary], full: Summary) -> str:
    header = (
        "| context | English WER | Δ vs full | other WER | languages changed | "
        "translation WER vs full | segment shift ms (mismatched clips) | "
        "word shift ms (mismatched clips) | batched 120 s WER | windows flagged | "
        "encoder frames | seconds | passes |"
    )
    lines = [header, "|" + "---|" * 13]

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f} %"

    for row in [full, *rows]:
        lines.append(
            f"| {row.label} | {pct(row.english_wer)} | "
            f"{100 * (row.english_wer - full.english_wer):+.2f} | {pct(row.other_wer)} | "
            f"{row.language_changes} | {pct(row.translation_wer)} | "
            f"{row.segment_shift_ms:.0f} ({row.segment_mismatch}) | "
            f"{row.word_shift_ms:.0f} ({row.word_mismatch}) | {pct(row.batched_long_wer)} | "
            f"{row.windows_flagged} | {row.encoder_frames} | {row.seconds:.1f} | "
            f"{'reference' if row is full else ('yes' if _acceptable(row, full) else 'no')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the study and print its table."""
    from app.transcription.audio import decode_audio
    from app.transcription.encoder_context import FULL_POLICY, ContextPolicy
    from app.transcription.single_pass import SinglePassWhisperModel

    parser = argparse.ArgumentParser(
        prog="whisper-api bench context", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-long", action="store_true", help="leave out the 120 s clip")
    parser.add_argument(
        "--no-redo", action="store_true", help="keep shortened decodings that show failure signs"
    )
    args = parser.parse_args(argv)

    model = SinglePassWhisperModel(
        base_model_path(), device="cpu", compute_type="int8", cpu_threads=args.threads
    )
    model.redo_failures = not args.no_redo
    clips = _clips(AUDIO_DIR)
    audios = {p.name: decode_audio(p.read_bytes()) for p in clips}
    references = {p.name: p.with_suffix(".txt").read_text(encoding="utf-8") for p in clips}
    with_long = not args.skip_long and LONG in audios
    full_run = _run_policy(model, FULL_POLICY, audios, with_long=with_long)
    full = _summarise(full_run, full_run, references)
    rows = []
    for floor, margin in CANDIDATES:
        policy = ContextPolicy(floor_frames=floor, margin_frames=margin)
        run = _run_policy(model, policy, audios, with_long=with_long)
        rows.append(_summarise(run, full_run, references))
        print(f"done {run.label} in {run.seconds:.1f} s", flush=True)
    print(_table(rows, full))
    passing = [row for row in rows if _acceptable(row, full)]
    chosen = min(passing, key=lambda row: row.encoder_frames) if passing else None
    print(f"chosen: {chosen.label if chosen else 'none (keep the full context)'}")
    return 0
