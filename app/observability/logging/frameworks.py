"""Glue between the logging pipeline and the web stack: uvicorn's loggers and Litestar's."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from litestar.logging.config import BaseLoggingConfig
from litestar.types import GetLogger, Logger, Scope
from structlog.typing import EventDict, WrappedLogger

__all__ = [
    "ROUTED_LOGGERS",
    "litestar_logging_config",
    "uvicorn_access_event",
    "uvicorn_log_config",
]

_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
# Library loggers that may have been given handlers of their own (uvicorn's or
# Litestar's default dictConfig): `configure_logging` makes them propagate to ours.
ROUTED_LOGGERS = (*_UVICORN_LOGGERS, "litestar")


def uvicorn_access_event(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    """Make uvicorn's access-log line a structured ``http_request`` event.

    uvicorn formats ``'%s - "%s %s HTTP/%s" %d'`` from (client_addr, method,
    full_path, http_version, status_code). Keeping the parts as keys lets the
    privacy processor drop the client and mask the query values, and the path
    is scrubbed once as a value instead of inside the formatted line.
    """
    args = event_dict.pop("positional_args", None)
    record = event_dict.get("_record")
    if (
        isinstance(record, logging.LogRecord)
        and record.name == "uvicorn.access"
        and isinstance(args, tuple)
        and len(args) == 5
    ):
        client, method, path, http_version, status = args
        event_dict["event"] = "http_request"
        event_dict["method"] = method
        event_dict["path"] = path
        event_dict["status"] = status
        event_dict["http_version"] = http_version
        event_dict["client"] = client
    elif isinstance(record, logging.LogRecord) and isinstance(args, tuple):
        _websocket_event(record, args, event_dict)
    return event_dict


def _websocket_event(
    record: logging.LogRecord, args: tuple[Any, ...], event_dict: EventDict
) -> None:
    """Make uvicorn's websocket handshake line (``'%s - "WebSocket %s" ...'``) structured.

    uvicorn logs it on ``uvicorn.error`` with the client's address and the full
    path, query included; as keys, the privacy processor drops the one and masks
    the other like an HTTP request's.
    """
    if not (
        record.name.startswith("uvicorn")
        and isinstance(record.msg, str)
        and record.msg.startswith('%s - "WebSocket %s"')
        and len(args) in (2, 3)
    ):
        return
    event_dict["event"] = "websocket_request"
    event_dict["client"] = args[0]
    event_dict["path"] = args[1]
    tail = record.msg.removeprefix('%s - "WebSocket %s"').strip()
    event_dict["status"] = args[2] if len(args) == 3 else tail.strip("[]")


def uvicorn_log_config() -> dict[str, Any]:
    """A dictConfig for ``uvicorn.run(log_config=...)`` that installs no handlers.

    uvicorn's loggers keep no handlers of their own and propagate to the root
    handlers installed by `configure_logging`.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {name: {"handlers": [], "propagate": True} for name in _UVICORN_LOGGERS},
    }


def _log_uncaught_exception(logger: Logger, scope: Scope, traceback_lines: list[str]) -> None:
    """Log a request's uncaught server error (5xx) once, with its traceback.

    Client errors (HTTPException below 500, e.g. 404 or validation) are not
    logged here: uvicorn's access log already shows their status.
    """
    exc = sys.exc_info()[1]
    status = getattr(exc, "status_code", 500)
    if isinstance(status, int) and status < 500:
        return
    if exc is not None and _has_own_handler(scope, exc):
        return
    structlog.get_logger("litestar").error(
        "request_failed",
        method=scope.get("method"),
        path=scope.get("path"),
        error=type(exc).__name__,
        exc_info=True,
    )


def _has_own_handler(scope: Scope, exc: BaseException) -> bool:
    """Whether a handler is registered for the exception's own type (or a parent below Exception).

    Such handlers turn expected failures (undecodable audio, a full queue, an unknown
    language) into client errors; only exceptions nobody expected are server errors.
    """
    route_handler: Any = scope.get("route_handler")  # absent when routing itself failed
    if route_handler is None:
        return False
    handlers = route_handler.resolve_exception_handlers()
    for cls in type(exc).__mro__:
        if cls in (Exception, BaseException):
            return False
        if cls in handlers:
            return True
    return False


class _PipelineLoggingConfig(BaseLoggingConfig):
    """Litestar logging that reuses the root handlers instead of installing its own."""

    def __init__(self) -> None:
        self.log_exceptions = "always"
        self.traceback_line_limit = -1
        self.exception_logging_handler = _log_uncaught_exception
        self.disable_stack_trace: set[int | type[Exception]] = set()

    def configure(self) -> GetLogger:
        """Return logging.getLogger: the "litestar" logger propagates to our handlers."""
        return logging.getLogger

    @staticmethod
    def set_level(logger: Logger, level: int) -> None:
        """Litestar calls this when `app.debug` changes."""
        logger.setLevel(level)


def litestar_logging_config() -> BaseLoggingConfig:
    """The ``logging_config`` for ``Litestar(...)``: keeps `configure_logging`'s handlers.

    Litestar's default `LoggingConfig` runs dictConfig when the app is built and
    replaces the root handlers with its own queue handler, which would bypass the
    privacy processors. This config installs nothing and logs uncaught server
    errors as ``request_failed`` events through our pipeline.
    """
    return _PipelineLoggingConfig()
