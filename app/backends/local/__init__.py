"""The one-process backend: the in-memory queue and task store behind the service's seam."""

from app.backends.local.backend import LocalBackend
from app.backends.local.queue import MemoryJobQueue
from app.backends.local.store import MemoryTaskStore

__all__ = ["LocalBackend", "MemoryJobQueue", "MemoryTaskStore"]
