"""whisper-api: a self-hosted speech-to-text service."""

__version__ = "0.1.0"
