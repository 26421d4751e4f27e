"""The ``speakers`` bench scenario: diarization error, speaker counts and CPU cost.

Conversations are built from ../shared/audio (app.bench.conversations): 3 and 4 voices from
different recordings, a harder set of 4 voices brought to one level with short turns,
and single voices. For each, the speaker stage runs once to get window vectors, and the
clustering is then repeated over a range of thresholds, so the table shows how the
threshold was chosen. DER counts missed speech, false alarm and confusion over the
reference speech, at 10 ms, under the best label-to-voice mapping; the collar variant
ignores 0.25 s either side of every reference turn boundary. An hour of audio made of
4-voice turns is timed last (CPU seconds of this process: the embedder runs on one thread).
"""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.bench.conversations import Conversation, build_conversation
from app.transcription.speakers import (
    SpeakerCount,
    SpeakerEmbedder,
    SpeakerRequest,
    SpeakerTurn,
    load_embedder,
)
from app.transcription.speakers.clustering import DEFAULT_THRESHOLD
from app.transcription.speakers.pipeline import embed_windows, turns_from_vectors

__all__ = ["SETS", "bench_speakers", "diarization_error", "speaker_table"]

STEP_S = 0.01
COLLAR_S = 0.25
THRESHOLDS = (0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65)


@dataclass(frozen=True)
class ConversationSet:
    """Voices, turn lengths and whether turns are levelled (one microphone, one gain)."""

    voices: tuple[str, ...]
    shortest_s: float = 1.9
    longest_s: float = 6.0
    turns: int = 18
    level: float | None = None


SETS: dict[str, ConversationSet] = {
    "3-voice": ConversationSet(("ljspeech", "librispeech", "jfk")),
    "4-voice": ConversationSet(("ljspeech", "librispeech", "jfk", "ted")),
    # Four voices of one kind (short read sentences from test corpora), every turn at the
    # same loudness and short: the closest this clip set gets to one room, one microphone.
    "hard": ConversationSet(("de", "fr", "ru", "zh"), 1.9, 3.0, 24, level=0.05),
    # One recording, one microphone: LJ Speech's reader and two copies of her played 12 %
    # slower and faster (pitch and formants shift together), as voices that sound alike.
    "same-mic": ConversationSet(("ljspeech", "ljspeech@0.88", "ljspeech@1.12"), 1.9, 4.0, 18),
    "1-voice": ConversationSet(("ted",), turns=10),
}


def _frames(turns: list[tuple[str, float, float]], count: int) -> npt.NDArray[np.int64]:
    """A label index per 10 ms frame (-1 where nobody speaks); labels by first appearance."""
    names: dict[str, int] = {}
    frames = np.full(count, -1, dtype=np.int64)
    for name, start, end in turns:
        label = names.setdefault(name, len(names))
        frames[int(start / STEP_S) : int(end / STEP_S)] = label
    return frames


def _hypothesis(turns: list[SpeakerTurn], count: int) -> npt.NDArray[np.int64]:
    """Each frame inside a window takes the speaker of the nearest window centre."""
    if not turns:
        return np.full(count, -1, dtype=np.int64)
    names = {name: index for index, name in enumerate(dict.fromkeys(t.speaker for t in turns))}
    centres = np.array([(t.start + t.end) / 2 for t in turns])
    times = np.arange(count) * STEP_S
    right = np.clip(np.searchsorted(centres, times), 1, len(centres) - 1)
    nearest = np.where(times - centres[right - 1] <= centres[right] - times, right - 1, right)
    if len(centres) == 1:
        nearest = np.zeros(count, dtype=np.int64)
    labels = np.array([names[t.speaker] for t in turns])[nearest]
    covered = np.zeros(count, dtype=bool)
    for turn in turns:
        covered[int(turn.start / STEP_S) : int(turn.end / STEP_S)] = True
    return np.where(covered, labels, -1)


def _best_overlap(overlap: npt.NDArray[np.int64]) -> int:
    """The most frames on the right voice over all one-to-one label mappings."""
    hyps, refs = overlap.shape
    if hyps > 7:
        return int(overlap.max(axis=1).sum())
    best = 0
    for perm in itertools.permutations(range(max(refs, hyps)), hyps):
        best = max(best, sum(int(overlap[h, r]) for h, r in enumerate(perm) if r < refs))
    return best


def diarization_error(conversation: Conversation, turns: list[SpeakerTurn], collar: float) -> float:
    """(missed + false alarm + confusion) / reference speech, frames near boundaries ignored."""
    count = int(conversation.duration / STEP_S) + 1
    ref = _frames([(t.voice, t.start, t.end) for t in conversation.turns], count)
    hyp = _hypothesis(turns, count)
    scored = np.ones(count, dtype=bool)
    width = int(collar / STEP_S)
    for turn in conversation.turns:
        for edge in (int(turn.start / STEP_S), int(turn.end / STEP_S)):
            scored[max(0, edge - width) : edge + width] = False
    ref, hyp = ref[scored], hyp[scored]
    speech = int((ref >= 0).sum())
    missed = int(((ref >= 0) & (hyp < 0)).sum())
    false_alarm = int(((ref < 0) & (hyp >= 0)).sum())
    both = (ref >= 0) & (hyp >= 0)
    overlap = np.zeros((max(int(hyp.max()) + 1, 1), int(ref.max()) + 1), dtype=np.int64)
    np.add.at(overlap, (hyp[both], ref[both]), 1)
    confusion = int(both.sum()) - _best_overlap(overlap)
    return (missed + false_alarm + confusion) / max(speech, 1)


def _conversations(audio_dir: Path, name: str, seeds: int) -> list[Conversation]:
    spec = SETS[name]
    built = []
    for seed in range(seeds):
        rng = random.Random(seed)  # noqa: S311 (reproducible bench material)
        lengths = [rng.uniform(spec.shortest_s, spec.longest_s) for _ in range(spec.turns)]
        built.append(
            build_conversation(audio_dir, spec.voices, lengths, seed=seed, level=spec.level)
        )
    return built


def _score_set(conversations: list[Conversation], embedder: SpeakerEmbedder) -> dict[str, Any]:
    """DER, count accuracy and CPU cost of one set, at every threshold of the sweep."""
    audio_s = sum(c.duration for c in conversations)
    began = time.process_time()
    found = [embed_windows(c.audio, embedder) for c in conversations]
    embed_cpu = time.process_time() - began
    sweep: dict[str, dict[str, float]] = {}
    cluster_cpu = 0.0
    for threshold in THRESHOLDS:
        request = SpeakerRequest(threshold=threshold)
        began = time.process_time()
        all_turns = [turns_from_vectors(f, request, embedder) for f in found]
        elapsed = time.process_time() - began
        cluster_cpu = elapsed if threshold == DEFAULT_THRESHOLD else cluster_cpu
        pairs = list(zip(conversations, all_turns, strict=True))
        sweep[f"{threshold:.2f}"] = {
            "der": _mean([diarization_error(c, t, 0.0) for c, t in pairs]),
            "der_collar": _mean([diarization_error(c, t, COLLAR_S) for c, t in pairs]),
            "count_accuracy": _mean([float(_found(t) == len(c.voices)) for c, t in pairs]),
        }
    hinted = SpeakerRequest(count=SpeakerCount(exact=len(conversations[0].voices)))
    hinted_turns = [turns_from_vectors(f, hinted, embedder) for f in found]
    return {
        "conversations": len(conversations),
        "der_collar_with_num_speakers": _mean(
            [
                diarization_error(c, t, COLLAR_S)
                for c, t in zip(conversations, hinted_turns, strict=True)
            ]
        ),
        "audio_s": round(audio_s, 1),
        "cpu_s_per_audio_min": round((embed_cpu + cluster_cpu) / audio_s * 60, 3),
        "sweep": sweep,
    }


def _found(turns: list[SpeakerTurn]) -> int:
    return len({turn.speaker for turn in turns})


def _mean(values: list[float]) -> float:
    return round(float(np.mean(values)), 4) if values else 0.0


def _hour(audio_dir: Path, embedder: SpeakerEmbedder) -> dict[str, Any]:
    """An hour of 4-voice turns (2-8 s), diarized once at the default threshold."""
    rng = random.Random(60)  # noqa: S311 (reproducible bench material)
    lengths: list[float] = []
    while sum(lengths) + 0.5 * len(lengths) < 3600:
        lengths.append(rng.uniform(2.0, 8.0))
    talk = build_conversation(audio_dir, SETS["4-voice"].voices, lengths, seed=60)
    began, wall = time.process_time(), time.perf_counter()
    turns = turns_from_vectors(embed_windows(talk.audio, embedder), SpeakerRequest(), embedder)
    return {
        "audio_s": round(talk.duration, 1),
        "cpu_s": round(time.process_time() - began, 1),
        "wall_s": round(time.perf_counter() - wall, 1),
        "speakers_found": _found(turns),
        "der_collar": round(diarization_error(talk, turns, COLLAR_S), 4),
    }


def bench_speakers(audio_dir: Path, *, seeds: int = 3, hour: bool = True) -> dict[str, Any]:
    """Every set at every threshold, then the hour; one JSON-ready dict."""
    embedder = load_embedder()
    result: dict[str, Any] = {"threshold": DEFAULT_THRESHOLD, "collar_s": COLLAR_S, "sets": {}}
    for name in SETS:
        result["sets"][name] = _score_set(_conversations(audio_dir, name, seeds), embedder)
    if hour:
        result["hour"] = _hour(audio_dir, embedder)
    return result


def speaker_table(result: dict[str, Any]) -> str:
    """The scenario as text: per set, the sweep with the chosen threshold marked."""
    lines = [f"speakers (threshold {result['threshold']}, collar {result['collar_s']} s)"]
    for name, row in result["sets"].items():
        lines.append(
            f"  {name:<8} {row['conversations']} conversations, {row['audio_s']} s audio, "
            f"{row['cpu_s_per_audio_min']} CPU s per audio minute, DER(collar) with "
            f"num_speakers given {row['der_collar_with_num_speakers']:.3f}"
        )
        for threshold, figures in row["sweep"].items():
            mark = "*" if float(threshold) == result["threshold"] else " "
            lines.append(
                f"   {mark}{threshold}  DER {figures['der']:.3f}  DER(collar) "
                f"{figures['der_collar']:.3f}  count accuracy {figures['count_accuracy']:.2f}"
            )
    if "hour" in result:
        lines.append("  hour     " + ", ".join(f"{k}={v}" for k, v in result["hour"].items()))
    return "\n".join(lines)
