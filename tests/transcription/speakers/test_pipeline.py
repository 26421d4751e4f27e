"""The speaker stage end to end on conversations built from ../shared/audio."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest

from app.bench.conversations import Conversation, load_voice
from app.transcription.speakers import (
    KnownSpeaker,
    SpeakerCount,
    SpeakerEmbedder,
    SpeakerRequest,
    label_speakers,
)
from app.transcription.types import Segment, Transcript, Word
from tests.conftest import SHARED_AUDIO

Build = Callable[..., Conversation]


def _word_grid(conversation: Conversation) -> Transcript:
    """A transcript with a 0.4 s word every 0.5 s of every turn, one segment per 3 turns."""
    segments: list[Segment] = []
    turns = conversation.turns
    for index in range(0, len(turns), 3):
        words = [
            Word(start, start + 0.4, " w", 1.0)
            for turn in turns[index : index + 3]
            for start in np.arange(turn.start, turn.end - 0.4, 0.5)
        ]
        start, end = words[0].start, words[-1].end
        segments.append(Segment(id=len(segments) + 1, start=start, end=end, text="", words=words))
    return Transcript(
        text="",
        language="en",
        language_probability=1.0,
        duration=conversation.duration,
        segments=segments,
    )


def _truth(conversation: Conversation, seconds: float) -> str:
    return next(turn.voice for turn in conversation.turns if turn.start <= seconds <= turn.end)


def _accuracy(conversation: Conversation, labelled: Transcript) -> tuple[set[str], float]:
    """The labels used, and the share of words right under the best label-to-voice mapping."""
    pairs = [
        (word.speaker, _truth(conversation, (word.start + word.end) / 2))
        for segment in labelled.segments
        for word in segment.words or ()
    ]
    labels = sorted({label for label, _ in pairs if label})
    voices = sorted(conversation.voices)
    best = max(
        sum(mapping.get(label) == voice for label, voice in pairs)
        for mapping in (
            dict(zip(labels, perm, strict=True))
            for perm in itertools.permutations(voices + [""] * len(labels), len(labels))
        )
    )
    return set(labels), best / len(pairs)


@pytest.mark.parametrize(
    "voices",
    [("ljspeech", "librispeech", "jfk"), ("ljspeech", "librispeech", "jfk", "ted")],
    ids=["three", "four"],
)
def test_conversation_gets_right_count_and_labels(
    voices: tuple[str, ...], conversation: Build, embedder: SpeakerEmbedder
) -> None:
    """3 and 4 voices give 3 and 4 labels, ≥ 90 % of words on the right one, one per segment."""
    talk = conversation(voices, turns=14)
    labelled = label_speakers(talk.audio, _word_grid(talk), SpeakerRequest(), embedder)
    labels, accuracy = _accuracy(talk, labelled)
    assert labels == set("ABCD"[: len(voices)])
    assert accuracy >= 0.9
    for segment in labelled.segments:
        assert {word.speaker for word in segment.words or ()} == {segment.speaker}


def test_single_speaker_stays_one(conversation: Build, embedder: SpeakerEmbedder) -> None:
    """One voice, many turns: every segment is speaker A."""
    talk = conversation(["ted"], turns=10)
    labelled = label_speakers(talk.audio, _word_grid(talk), SpeakerRequest(), embedder)
    assert {segment.speaker for segment in labelled.segments} == {"A"}


def test_num_speakers_fixes_the_count(conversation: Build, embedder: SpeakerEmbedder) -> None:
    """num_speakers=2 on three voices gives exactly two labels."""
    talk = conversation(["ljspeech", "librispeech", "jfk"], turns=9)
    request = SpeakerRequest(count=SpeakerCount(exact=2))
    labelled = label_speakers(talk.audio, _word_grid(talk), request, embedder)
    assert {segment.speaker for segment in labelled.segments} == {"A", "B"}


def test_known_speakers_name_their_voices(conversation: Build, embedder: SpeakerEmbedder) -> None:
    """References name the matching voices; the voice without one keeps a letter."""
    talk = conversation(["ljspeech", "librispeech", "ted"], turns=12)
    ted = load_voice(SHARED_AUDIO, "ted")[-8 * 16_000 :]
    lj = load_voice(SHARED_AUDIO, "ljspeech")[-6 * 16_000 :]
    request = SpeakerRequest(known=(KnownSpeaker("Bill", ted), KnownSpeaker("Linda", lj)))
    labelled = label_speakers(talk.audio, _word_grid(talk), request, embedder)
    names = {"ted": "Bill", "ljspeech": "Linda", "librispeech": "A"}
    right = sum(
        names[_truth(talk, (w.start + w.end) / 2)] == w.speaker
        for segment in labelled.segments
        for w in segment.words or ()
    )
    total = sum(len(segment.words or ()) for segment in labelled.segments)
    assert right / total >= 0.9


def test_silence_gives_one_speaker_without_failing(embedder: SpeakerEmbedder) -> None:
    """Audio without speech still labels its (hallucinated) segments, as A."""
    transcript = Transcript(
        text=" hm",
        language="en",
        language_probability=1.0,
        duration=2.0,
        segments=[Segment(id=1, start=0.0, end=2.0, text=" hm")],
    )
    audio = np.zeros(32_000, dtype=np.float32)
    labelled = label_speakers(audio, transcript, SpeakerRequest(), embedder)
    assert [segment.speaker for segment in labelled.segments] == ["A"]
