"""Words timed for cues leave the decoding exactly as a plain request's (real base model)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from app.transcription.audio import decode_audio
from app.transcription.cue_timing import CueTimedWhisperModel
from app.transcription.engine import FasterWhisperTranscriber
from app.transcription.models import ModelSources
from app.transcription.types import TranscribeOptions, Transcript
from tests.conftest import make_settings, shared_clip

pytestmark = pytest.mark.real_model

CLIPS = (
    "en_jfk.flac",
    "en_ls-test-clean_1089-134686-0000.flac",
    "en_ls-test-clean_1089-134686-0001.flac",
    "en_ls-test-clean_1089-134691-0000.flac",
    "en_ls-test-clean_1089-134691-0001.flac",
    "en_ljspeech_LJ001-0001.wav",
    "en_ljspeech_LJ001-0002.wav",
    "en_ljspeech_LJ001-0003.wav",
    "en_ljspeech_LJ001-0004.wav",
)
# Five different read sentences (29.7 s, as tests/test_readonly_server.py uploads them):
# the upload whose silent tail word timing used to decode again into a repeat.
JOINED = (
    "en_ljspeech_LJ001-0001.wav",
    "en_ljspeech_LJ001-0003.wav",
    "en_ljspeech_LJ001-0004.wav",
    "en_ls-test-clean_1089-134686-0001.flac",
    "en_ljspeech_LJ001-0002.wav",
)
PLAIN = TranscribeOptions(language="en")
FOR_CUES = TranscribeOptions(language="en", cue_words=True)

Audio = npt.NDArray[np.float32]


@pytest.fixture(scope="module")
def transcriber() -> FasterWhisperTranscriber:
    """The service's model class (bundled base, CPU int8) behind the service's adapter."""
    settings = make_settings()
    path = ModelSources(None, settings.model_cache_dir, allow_download=False).locate("base")
    model = CueTimedWhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=2)
    return FasterWhisperTranscriber(model, compute_type="int8")


def clip_audio(name: str) -> Audio:
    """One shared clip, or the 29.7 s of the joined ones."""
    if name == "joined":
        return np.concatenate([decode_audio(shared_clip(c).read_bytes()) for c in JOINED])
    return decode_audio(shared_clip(name).read_bytes())


def decode(
    transcriber: FasterWhisperTranscriber, audio: Audio, options: TranscribeOptions
) -> Transcript:
    """The sequential decoding of the whole clip."""
    return transcriber.transcribe(audio, options, lambda *_: None, lambda: False)


def decoded(transcript: Transcript) -> list[tuple[float, float, str]]:
    """What the decoding said, segment by segment, with its times."""
    return [(s.start, s.end, s.text) for s in transcript.segments]


@pytest.mark.parametrize("name", [*CLIPS, "joined"])
def test_cue_words_leave_the_decoding_unchanged(
    transcriber: FasterWhisperTranscriber, name: str
) -> None:
    """Text and segment times equal a plain decoding's; every segment gets its own words."""
    audio = clip_audio(name)
    plain = decode(transcriber, audio, PLAIN)
    timed = decode(transcriber, audio, FOR_CUES)
    assert timed.text == plain.text
    assert decoded(timed) == decoded(plain)
    assert not plain.words
    for segment in timed.segments:
        assert segment.words
        assert "".join(w.word for w in segment.words).strip() == segment.text.strip()
        starts = [w.start for w in segment.words]
        assert starts == sorted(starts)
        assert all(0 <= w.start <= w.end <= timed.duration for w in segment.words)


def test_asked_word_timestamps_still_move_the_seek_as_faster_whisper_does(
    transcriber: FasterWhisperTranscriber,
) -> None:
    """A client asking for words gets faster-whisper's own word timing: segment times from words."""
    audio = clip_audio("en_jfk.flac")
    asked = decode(transcriber, audio, TranscribeOptions(language="en", word_timestamps=True))
    timed = decode(transcriber, audio, FOR_CUES)
    assert [w.word for w in asked.words] == [w.word for w in timed.words]
    assert asked.segments[0].end == asked.segments[0].words[-1].end  # type: ignore[index]
    assert decoded(asked) != decoded(timed)


def test_a_batch_times_cue_words_as_each_clip_alone(
    transcriber: FasterWhisperTranscriber,
) -> None:
    """Short clips decoded together get their cue words; plain members stay wordless."""
    names = CLIPS[1:5]
    audios = [clip_audio(name) for name in names]
    options = [FOR_CUES, FOR_CUES, PLAIN, FOR_CUES]
    batched = transcriber.decode_batch(audios, options)
    for audio, option, result in zip(audios, options, batched, strict=True):
        assert result is not None
        alone = decode(transcriber, audio, option)
        assert decoded(result) == decoded(alone)
        if not option.cue_words:
            assert not result.words
            continue
        assert [w.word for w in result.words] == [w.word for w in alone.words]
        for mine, theirs in zip(result.words, alone.words, strict=True):
            assert mine.start == pytest.approx(theirs.start, abs=0.1)
            assert mine.end == pytest.approx(theirs.end, abs=0.1)


def test_silence_around_speech_gets_no_cue_words_of_its_own(
    transcriber: FasterWhisperTranscriber,
) -> None:
    """Seconds of silence before and after jfk: the words stay where the speech is."""
    speech = clip_audio("en_jfk.flac")
    silence = np.zeros(16000 * 3, dtype=np.float32)
    audio = np.concatenate([silence, speech, silence])
    plain = decode(transcriber, audio, PLAIN)
    timed = decode(transcriber, audio, FOR_CUES)
    assert decoded(timed) == decoded(plain)
    assert timed.words[0].start >= 2.5
    assert timed.words[-1].end <= 3 + len(speech) / 16000 + 0.5
