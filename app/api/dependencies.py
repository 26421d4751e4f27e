"""Dependency markers shared by the controllers."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from app.api.security import owner_of
from app.service import TranscriptionService

__all__ = ["Owner", "Service", "provide_owner"]

# Handlers name their parameter `service`; create_app provides it.
Service = NamedDependency[TranscriptionService]

# Handlers name their parameter `owner`: the id of the API key that made the request
# (None when API keys are off). Tasks are bound to it; another key sees them as unknown.
Owner = NamedDependency[str | None]


def provide_owner(request: Request[Any, Any, Any]) -> str | None:
    """The request's owner id, set by the API key middleware."""
    return owner_of(request.scope)
