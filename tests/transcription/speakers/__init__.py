"""Tests for the speaker stage (app.transcription.speakers)."""
