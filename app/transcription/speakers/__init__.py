"""Speaker labels ("who said what"), offline: see :func:`label_speakers`."""

from app.transcription.speakers.clustering import SpeakerCount
from app.transcription.speakers.embedders import SpeakerEmbedder, SpeakerModelError, load_embedder
from app.transcription.speakers.pipeline import (
    KnownSpeaker,
    SpeakerRequest,
    SpeakerTurn,
    label_speakers,
    speaker_turns,
)

__all__ = [
    "KnownSpeaker",
    "SpeakerCount",
    "SpeakerEmbedder",
    "SpeakerModelError",
    "SpeakerRequest",
    "SpeakerTurn",
    "label_speakers",
    "load_embedder",
    "speaker_turns",
]
