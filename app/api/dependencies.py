"""Dependency markers shared by the controllers."""

from __future__ import annotations

from litestar.di import NamedDependency

from app.service import TranscriptionService

__all__ = ["Service"]

# Handlers name their parameter `service`; create_app provides it.
Service = NamedDependency[TranscriptionService]
