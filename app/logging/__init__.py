"""One logging pipeline for the service: structlog and the stdlib, privacy first.

* `app.logging.redaction`: what may be logged (pure: scrubbing, id shortening,
  the structlog processor);
* `app.logging.handlers`: where it goes (console, rotating file, formatters);
* `app.logging.frameworks`: uvicorn's and Litestar's loggers routed through it.
"""

from __future__ import annotations

from app.logging.frameworks import litestar_logging_config, uvicorn_log_config
from app.logging.handlers import configure_logging
from app.logging.redaction import short_id

__all__ = [
    "configure_logging",
    "litestar_logging_config",
    "short_id",
    "uvicorn_log_config",
]
