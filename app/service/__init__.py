"""The service behind every surface: the intake, the tasks' lifecycle, uploads, draining, live.

It depends on the backend seam (`app.backends.base`) and the transcription core only;
the HTTP and WebSocket surfaces (`app.api`) call it, never the other way.
"""

from app.service.core import JobSpec, TranscriptionService
from app.service.reservation import ServiceStatus

__all__ = ["JobSpec", "ServiceStatus", "TranscriptionService"]
