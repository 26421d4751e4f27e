"""One logging pipeline for the service: structlog and the stdlib, privacy first.

* `app.observability.logging.redaction`: what may be logged (pure: scrubbing, id shortening,
  the structlog processor);
* `app.observability.logging.handlers`: where it goes (console, rotating file, formatters);
* `app.observability.logging.frameworks`: uvicorn's and Litestar's loggers routed through it.
"""

from __future__ import annotations

from app.observability.logging.frameworks import litestar_logging_config, uvicorn_log_config
from app.observability.logging.handlers import configure_logging
from app.observability.logging.redaction import short_id

__all__ = [
    "configure_logging",
    "litestar_logging_config",
    "short_id",
    "uvicorn_log_config",
]
