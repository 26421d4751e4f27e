"""Speaker labels end to end: the real server and bundled model, the official `openai` SDK
parsing diarized_json, on conversations built from ../shared/audio clips."""

from __future__ import annotations

import base64

import openai
import pytest

from app.bench.conversations import load_voice
from tests.conftest import SHARED_AUDIO
from tests.speaker_helpers import conversation, speech_on_right_label, wav

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def live_server_env() -> dict[str, str]:
    """One real server (bundled tiny.en on the CPU: every voice here speaks English)."""
    return {"CPU_FALLBACK_MODEL": "tiny.en"}


def diarize(
    sdk: openai.OpenAI, audio: bytes, **options: object
) -> openai.types.audio.TranscriptionDiarized:
    """client.audio.transcriptions.create(..., response_format="diarized_json")."""
    result = sdk.audio.transcriptions.create(
        model="gpt-4o-transcribe-diarize",
        file=("talk.wav", audio, "audio/wav"),
        response_format="diarized_json",
        chunking_strategy="auto",
        language="en",  # tiny.en cannot detect the language
        **options,  # type: ignore[arg-type]
    )
    assert isinstance(result, openai.types.audio.TranscriptionDiarized)
    return result


@pytest.mark.parametrize(
    "voices",
    [("ljspeech", "librispeech", "jfk"), ("ljspeech", "librispeech", "jfk", "ted")],
    ids=["three", "four"],
)
def test_sdk_diarized_json_finds_the_speakers(sdk: openai.OpenAI, voices: tuple[str, ...]) -> None:
    """The right number of speakers, and ≥ 90 % of speech time on the right label."""
    talk = conversation(voices, turns=12, seed=1)
    result = diarize(sdk, wav(talk.audio))
    labels, right = speech_on_right_label(
        talk, ((s.start, s.end, s.speaker) for s in result.segments)
    )
    assert labels == set("ABCD"[: len(voices)])
    assert right >= 0.9
    assert result.text.strip() and result.usage is not None


def test_sdk_single_speaker_is_one(sdk: openai.OpenAI) -> None:
    """A single voice over many turns gives one speaker, A."""
    talk = conversation(["ted"], turns=8, seed=2)
    result = diarize(sdk, wav(talk.audio))
    assert {segment.speaker for segment in result.segments} == {"A"}


def test_sdk_known_speaker_references_name_the_voices(sdk: openai.OpenAI) -> None:
    """Reference clips (data URLs) name their voices; the voice without one stays a letter."""
    talk = conversation(["ljspeech", "librispeech", "ted"], turns=12, seed=3)
    clips = {
        "Bill": load_voice(SHARED_AUDIO, "ted")[-8 * 16_000 :],
        "Linda": load_voice(SHARED_AUDIO, "ljspeech")[-6 * 16_000 :],
    }
    references = [
        "data:audio/wav;base64," + base64.b64encode(wav(clip)).decode() for clip in clips.values()
    ]
    result = diarize(
        sdk, wav(talk.audio), known_speaker_names=list(clips), known_speaker_references=references
    )
    labels, right = speech_on_right_label(
        talk, ((s.start, s.end, s.speaker) for s in result.segments)
    )
    assert labels == {"Bill", "Linda", "A"}
    names = {"ted": "Bill", "ljspeech": "Linda", "librispeech": "A"}
    named_right = sum(
        min(s.end, t.end) - max(s.start, t.start)
        for s in result.segments
        for t in talk.turns
        if names[t.voice] == s.speaker and min(s.end, t.end) > max(s.start, t.start)
    )
    assert named_right / sum(t.end - t.start for t in talk.turns) >= 0.8
    assert right >= 0.9
