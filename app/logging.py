"""One logging pipeline for the service: structlog and the stdlib, privacy first.

`configure_logging` routes both our structlog events and every stdlib record
(uvicorn, litestar, faster_whisper, httpx, ...) through
`structlog.stdlib.ProcessorFormatter`, so all of them pass the same privacy
processors before they are rendered:

* console (default stderr): `ConsoleRenderer` on a TTY, one JSON object a line
  otherwise;
* optionally a `TimedRotatingFileHandler` at `Settings.log_path`, formatted
  with `Settings.log_format` / `log_date_format`, where ``%(message)s`` is the
  event rendered as key=value.

Content (transcripts, prompts, file names, segments, words) is never logged,
whatever the mode: such keys are replaced by their length. In privacy mode
task ids and UUIDs are shortened to ``abcd…wxyz``, client addresses, e-mail
addresses and query-string values are removed. Tracebacks never show local
variables.

Event style: snake_case event names with counts and durations as keys, e.g.
``log.info("job_finished", task_id=..., audio_s=11.0, processing_s=1.7)``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import logging.handlers
import os
import re
import sys
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, TextIO, cast

import structlog
from litestar.logging.config import BaseLoggingConfig
from litestar.types import GetLogger, Logger, Scope
from structlog.dev import ConsoleRenderer, plain_traceback
from structlog.processors import (
    ExceptionRenderer,
    JSONRenderer,
    KeyValueRenderer,
    StackInfoRenderer,
    TimeStamper,
    format_exc_info,
)
from structlog.stdlib import ProcessorFormatter
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from app.config import Settings

__all__ = [
    "configure_logging",
    "get_logger",
    "litestar_logging_config",
    "short_id",
    "uvicorn_log_config",
]

ELLIPSIS = "\u2026"

# Keys whose values carry user content: never logged, replaced by a length.
_CONTENT_KEYS = frozenset(
    {
        "text",
        "transcript",
        "transcription",
        "prompt",
        "initial_prompt",
        "hotwords",
        "filename",
        "file_name",
        "segments",
        "words",
        "content",
        "body",
    }
)
# Credentials: never logged, whatever the mode.
_SECRET_KEYS = frozenset(
    {
        "api_key",
        "apikey",
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "password",
        "token",
        "access_token",
        "secret",
    }
)
# Personal data about the client: dropped in privacy mode.
_PERSONAL_KEYS = frozenset(
    {
        "client",
        "client_addr",
        "client_ip",
        "remote_addr",
        "remote_ip",
        "ip",
        "peer",
        "email",
        "x_email",
        "mail",
        "user_email",
        "headers",
        "x_forwarded_for",
        "forwarded",
    }
)
# Keys holding task ids: shortened in privacy mode.
_TASK_ID_KEYS = frozenset({"task_id", "task_ids", "job_id"})
# Keys whose values are structured tracebacks: their strings are scrubbed, but
# their keys (a frame's "filename") are not content.
_TRACEBACK_KEYS = frozenset({"exception", "stack"})

_EMAIL_RE = re.compile(r"[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_QUERY_RE = re.compile(r"(?<=[\w/.\-%])\?([^\s\"'<>#]+)")
_UUID_RE = re.compile(
    r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{32}|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}"
    r"-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})(?![0-9A-Fa-f])"
)
_IPV6_CANDIDATE_RE = re.compile(
    r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}(?![\w:])"
)
_IPV4_RE = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)")
_MAX_DEPTH = 6
_HEAD_KEYS = ("timestamp", "level", "event", "logger")

_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
# Library loggers that may have been given handlers of their own (uvicorn's or
# Litestar's default dictConfig): `configure_logging` makes them propagate to ours.
_ROUTED_LOGGERS = (*_UVICORN_LOGGERS, "litestar")

# Handlers installed by the last `configure_logging` call, replaced by the next.
_installed_handlers: list[logging.Handler] = []


def short_id(task_id: str) -> str:
    """Shorten an id to ``abcd…wxyz``; ids of 8 chars or fewer keep only their last 4."""
    if len(task_id) > 8:
        return f"{task_id[:4]}{ELLIPSIS}{task_id[-4:]}"
    if len(task_id) > 4:
        return f"{ELLIPSIS}{task_id[-4:]}"
    return ELLIPSIS


def _mask_query(match: re.Match[str]) -> str:
    query = match.group(1)
    if "=" not in query:
        return match.group(0)
    parts = re.split(r"([&;])", query)
    masked = [
        part
        if part in {"&", ";"}
        else (part.split("=", 1)[0] + "=" + ELLIPSIS if "=" in part else ELLIPSIS)
        for part in parts
    ]
    return "?" + "".join(masked)


def _replace_ip(match: re.Match[str]) -> str:
    candidate = match.group(0)
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return candidate
    if address.is_loopback or address.is_unspecified:
        return candidate  # the server's own listen address, not a client
    return "<ip>"


def _scrub_text(text: str) -> str:
    """Remove personal data from free text: e-mails, query values, ids, IPs."""
    text = _EMAIL_RE.sub("<email>", text)
    text = _QUERY_RE.sub(_mask_query, text)
    text = _UUID_RE.sub(lambda m: short_id(m.group(0)), text)
    if ":" in text:
        text = _IPV6_CANDIDATE_RE.sub(_replace_ip, text)
    return _IPV4_RE.sub(_replace_ip, text)


def _normalise_key(key: object) -> str:
    return str(key).lower().replace("-", "_")


class _Redactor:
    """The privacy processor: applied to every event, ours and foreign ones."""

    def __init__(self, *, privacy_mode: bool) -> None:
        self.privacy_mode = privacy_mode

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        return self._clean_mapping(event_dict, depth=0)

    def _clean_mapping(self, mapping: Mapping[Any, Any], *, depth: int) -> dict[Any, Any]:
        cleaned: dict[Any, Any] = {}
        for key, value in mapping.items():
            name = _normalise_key(key)
            if name in _CONTENT_KEYS:
                if isinstance(value, str):
                    cleaned[f"{key}_chars"] = len(value)
                elif isinstance(value, bytes | bytearray):
                    cleaned[f"{key}_bytes"] = len(value)
                elif isinstance(value, Sequence | Mapping | set | frozenset):
                    cleaned[f"{key}_count"] = len(value)
                continue
            if name in _SECRET_KEYS:
                continue
            if self.privacy_mode:
                if name in _PERSONAL_KEYS:
                    continue
                if name in _TASK_ID_KEYS:
                    cleaned[key] = self._shorten_ids(value)
                    continue
            if name in _TRACEBACK_KEYS:
                cleaned[key] = self._clean_value(value, depth=depth + 1, keys=False)
            else:
                cleaned[key] = self._clean_value(value, depth=depth + 1, keys=True)
        return cleaned

    def _shorten_ids(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, list | tuple | set | frozenset):
            return [self._shorten_ids(item) for item in value]
        if isinstance(value, uuid.UUID):
            return short_id(value.hex)
        return short_id(str(value))

    def _clean_value(self, value: Any, *, depth: int, keys: bool) -> Any:
        if isinstance(value, str):
            return _scrub_text(value) if self.privacy_mode else value
        if value is None or isinstance(value, bool | int | float):
            return value
        if depth > _MAX_DEPTH:
            return "<nested>"
        if isinstance(value, Mapping):
            if keys:
                return self._clean_mapping(value, depth=depth)
            return {k: self._clean_value(v, depth=depth + 1, keys=False) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean_value(item, depth=depth + 1, keys=keys) for item in value]
        if not self.privacy_mode:
            return value
        if isinstance(value, uuid.UUID):
            return short_id(value.hex)
        # Any other object renders through str()/repr() later: scrub that text now.
        return _scrub_text(str(value))


def _freeze_exc_info(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Turn ``exc_info=True`` into the actual exception while it is still current."""
    if event_dict.get("exc_info") is True:
        exc_info = sys.exc_info()
        event_dict["exc_info"] = exc_info if exc_info[0] is not None else False
    return event_dict


def _uvicorn_access_event(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    """Make uvicorn's access-log line a structured ``http_request`` event.

    uvicorn formats ``'%s - "%s %s HTTP/%s" %d'`` from (client_addr, method,
    full_path, http_version, status_code). Keeping the parts as keys lets the
    privacy processor drop the client and mask the query values.
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
    return event_dict


def _drop_time_and_level(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    """The file's format string already carries %(asctime)s and %(levelname)s."""
    event_dict.pop("timestamp", None)
    event_dict.pop("level", None)
    return event_dict


def _event_first(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Put event, level, timestamp and logger first, so JSON lines read naturally."""
    head = {key: event_dict.pop(key) for key in _HEAD_KEYS if key in event_dict}
    return {**head, **event_dict}


class _FileRenderer:
    """Render ``key=value`` pairs (event first); a traceback follows on its own lines."""

    def __init__(self) -> None:
        self._key_value = KeyValueRenderer(key_order=["event"], drop_missing=True)

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
        exception = event_dict.pop("exception", None)
        line = self._key_value(logger, method_name, event_dict)
        if exception:
            line += "\n" + str(exception).rstrip("\n")
        return line


class _SafeProcessorFormatter(ProcessorFormatter):
    """A ProcessorFormatter that never hands the raw record to logging's error path.

    If formatting fails, `logging.Handler.handleError` would print the record's
    message (our event dict, possibly with content) to stderr; instead a
    one-line placeholder naming the logger and the error type is written.
    """

    def format(self, record: logging.LogRecord) -> str:
        try:
            return super().format(record)
        except Exception as exc:
            return json.dumps(
                {
                    "event": "log_record_unformattable",
                    "logger": record.name,
                    "level": record.levelname.lower(),
                    "error": type(exc).__name__,
                }
            )


_json_lines = JSONRenderer(ensure_ascii=False)


def _json_renderer(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
    return cast(
        str, _json_lines(logger, method_name, _event_first(logger, method_name, event_dict))
    )


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _console_renderer(is_tty: bool) -> tuple[Processor, Processor]:
    """The exception processor and the renderer for the console handler."""
    if is_tty:
        colors = "NO_COLOR" not in os.environ
        # The traceback is rendered to text first (plain, never with locals) so the
        # privacy processor can scrub it; ConsoleRenderer then prints that text.
        return format_exc_info, ConsoleRenderer(colors=colors, exception_formatter=plain_traceback)
    return (
        ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
        _json_renderer,
    )


def _level_number(name: str) -> int:
    return logging.getLevelNamesMapping()[name.upper()]


def _remove_installed_handlers(root: logging.Logger) -> None:
    for handler in _installed_handlers:
        root.removeHandler(handler)
        handler.close()
    _installed_handlers.clear()


def _file_handler(settings: Settings) -> tuple[logging.Handler | None, str | None]:
    """Open the rotating log file, or say why it cannot be used."""
    path = settings.log_path
    if path is None:
        return None, None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.TimedRotatingFileHandler(
            path,
            when=settings.log_rotation_when,
            interval=settings.log_rotation_interval,
            backupCount=settings.log_rotation_backup_count,
            encoding="utf-8",
        )
    except (OSError, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return handler, None


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging through one privacy-aware pipeline.

    Idempotent: a second call replaces the handlers the first one installed
    (handlers added by others, e.g. pytest's capture, are left alone).
    """
    level = _level_number(settings.log_level)
    console_stream = sys.stderr if stream is None else stream
    redact = _Redactor(privacy_mode=settings.log_privacy_mode)

    timestamper = TimeStamper(fmt="iso", utc=True)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
    ]
    structlog_chain: list[Processor] = [
        *shared,
        _freeze_exc_info,
        StackInfoRenderer(),
        timestamper,
        ProcessorFormatter.wrap_for_formatter,
    ]
    foreign_pre_chain: list[Processor] = [*shared, _uvicorn_access_event, timestamper]

    exception_processor, renderer = _console_renderer(_is_tty(console_stream))
    console_handler = logging.StreamHandler(console_stream)
    console_handler.setFormatter(
        _SafeProcessorFormatter(
            processors=[
                ProcessorFormatter.remove_processors_meta,
                exception_processor,
                redact,
                renderer,
            ],
            foreign_pre_chain=foreign_pre_chain,
            pass_foreign_args=True,
        )
    )

    file_handler, file_error = _file_handler(settings)
    if file_handler is not None:
        try:
            file_handler.setFormatter(
                _SafeProcessorFormatter(
                    processors=[
                        ProcessorFormatter.remove_processors_meta,
                        format_exc_info,
                        redact,
                        _drop_time_and_level,
                        _FileRenderer(),
                    ],
                    foreign_pre_chain=foreign_pre_chain,
                    pass_foreign_args=True,
                    fmt=settings.log_format,
                    datefmt=settings.log_date_format,
                )
            )
        except ValueError as exc:  # an invalid LOG_FORMAT
            file_handler.close()
            file_handler, file_error = None, f"{type(exc).__name__}: {exc}"

    root = logging.getLogger()
    _remove_installed_handlers(root)
    for handler in (console_handler, file_handler):
        if handler is not None:
            root.addHandler(handler)
            _installed_handlers.append(handler)
    root.setLevel(level)

    # uvicorn or Litestar may have installed their own handlers earlier.
    for name in _ROUTED_LOGGERS:
        library_logger = logging.getLogger(name)
        for handler in list(library_logger.handlers):
            library_logger.removeHandler(handler)
        library_logger.propagate = True

    structlog.configure(
        processors=structlog_chain,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.stdlib.LoggerFactory(),
        context_class=dict,
        cache_logger_on_first_use=False,
    )

    if file_error is not None:
        get_logger(__name__).warning(
            "log_file_unavailable", path=str(settings.log_path), error=file_error
        )


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
    get_logger("litestar").error(
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


def get_logger(name: str | None = None) -> FilteringBoundLogger:
    """A structlog logger named *name* (default: the calling module's name)."""
    if name is None:
        name = cast(str, sys._getframe(1).f_globals.get("__name__", "app"))
    return cast(FilteringBoundLogger, structlog.get_logger(name))
