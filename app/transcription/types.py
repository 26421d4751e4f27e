"""Framework-free value types shared by the engine, queue, formats and API."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "LanguageCandidate",
    "LanguageDetection",
    "Segment",
    "SpeakerOptions",
    "SubtitleShape",
    "TaskType",
    "TranscribeOptions",
    "Transcript",
    "Word",
]

# "detect" jobs only identify the spoken language (/detect-language); they yield no transcript.
TaskType = Literal["transcribe", "translate", "detect"]


class Word(msgspec.Struct, frozen=True):
    """One word with its timing (seconds from the start of the audio)."""

    start: float
    end: float
    word: str
    probability: float
    # Set by the speaker stage (diarize): the label of the voice that said the word.
    speaker: str | None = None


class Segment(msgspec.Struct, frozen=True, kw_only=True):
    """One decoded segment, with the fields OpenAI's verbose_json needs."""

    id: int
    start: float
    end: float
    text: str
    seek: int = 0
    tokens: list[int] = msgspec.field(default_factory=list)
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0
    words: list[Word] | None = None
    # Set by the speaker stage (diarize): "A", "B", … or a known speaker's name.
    speaker: str | None = None


class Transcript(msgspec.Struct, frozen=True, kw_only=True):
    """The whole result of one job."""

    text: str
    language: str
    language_probability: float
    duration: float
    segments: list[Segment]

    @property
    def words(self) -> list[Word]:
        """All words of all segments, in order (empty without word timestamps)."""
        return [word for segment in self.segments for word in segment.words or ()]


class LanguageCandidate(msgspec.Struct, frozen=True):
    """One language and how likely it is."""

    language_code: str
    probability: float


class LanguageDetection(msgspec.Struct, frozen=True, kw_only=True):
    """The result of a "detect" job: the likeliest language and the runners-up."""

    language: str
    probability: float
    candidates: list[LanguageCandidate]
    speech_seconds: float


class SubtitleShape(msgspec.Struct, frozen=True, kw_only=True):
    """How subtitle cues are cut: characters per line, lines per cue, words per cue.

    None means "no limit". Cues are split on word timings where the transcript has
    them, otherwise on timings interpolated over the segment's characters. `readable`
    asks for the broadcasters' norms (app/transcription/subtitles.py) where the client
    gave no limit of its own; a limit the client gives is kept to the letter instead.
    """

    max_line_width: int | None = None
    max_line_count: int | None = None
    max_words_per_cue: int | None = None
    readable: bool = False

    @property
    def has_limits(self) -> bool:
        """The client named a limit of its own (those override the readable default)."""
        return self.max_line_width is not None or self.max_words_per_cue is not None

    @property
    def is_plain(self) -> bool:
        """No shaping at all: one cue per segment, as before shaping existed."""
        return not self.readable and not self.has_limits


class SpeakerOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Speaker labels (diarize) asked for one job; a plain record, as jobs are.

    Reference clips are the uploaded (encoded) audio of each known speaker, paired with
    ``known_speaker_names`` by position. The worker drops them once the stage has run.
    """

    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    known_speaker_names: tuple[str, ...] = ()
    known_speaker_references: tuple[bytes, ...] = ()
    # Whether the caller asked for word timings (the stage needs them either way).
    keep_words: bool = False


class TranscribeOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What a caller may ask of one transcription."""

    task: TaskType = "transcribe"
    # A catalogue model this job should aim for (within MAX_MODEL); None = the server's target.
    model: str | None = None
    language: str | None = None
    initial_prompt: str | None = None
    word_timestamps: bool = False
    # Time every word for subtitle cues only: they stay out of every other format (the
    # caller did not ask for them; see app.api.results), and the decoding is that of a
    # request without them (app.transcription.cue_timing).
    cue_words: bool = False
    vad_filter: bool = False
    beam_size: int = 5
    temperature: float | tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    # Set by the service, not by callers: >0 runs long audio through faster-whisper's
    # batched VAD pipeline with this many chunks per pass (BATCHED_INFERENCE).
    long_form_batch_size: int = 0
    # Speaker labels after transcription; None = none.
    speakers: SpeakerOptions | None = None
    # Tokens one window may generate; None = the model's limit (448). Live passes cap it
    # so that a decoding stuck in a loop ends in a fraction of a second.
    max_new_tokens: int | None = None

    @property
    def times_words(self) -> bool:
        """Whether the decoding times every word (asked, or for subtitle cues)."""
        return self.word_timestamps or self.cue_words

    @property
    def needs_multilingual(self) -> bool:
        """English-only models can neither translate nor detect the language."""
        return self.task != "transcribe" or self.language != "en"
