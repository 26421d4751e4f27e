"""Set-up of the logging pipeline: handlers, the rotating file, formatters, renderers.

`configure_logging` routes both our structlog events and every stdlib record
(uvicorn, litestar, faster_whisper, httpx, ...) through
`structlog.stdlib.ProcessorFormatter`, so all of them pass the same privacy
processor (`app.observability.logging.redaction.Redactor`) before they are rendered:

* console (default stderr): `ConsoleRenderer` on a TTY, one JSON object a line
  otherwise; its level is LOG_LEVEL_CONSOLE (default LOG_LEVEL);
* optionally a `TimedRotatingFileHandler` at `Settings.log_path`, formatted
  with `Settings.log_format` (``%`` or ``{`` style) / `log_date_format`, where
  the message field is the event rendered as key=value; its level is
  LOG_LEVEL_FILE (default LOG_LEVEL).

Tracebacks never show local variables.

Event style: snake_case event names with counts and durations as keys, e.g.
``log.info("job_finished", task_id=..., audio_s=11.0, processing_s=1.7)``.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
from typing import TextIO, cast

import structlog
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
from structlog.typing import EventDict, Processor, WrappedLogger

from app.config import Settings
from app.observability.logging.frameworks import ROUTED_LOGGERS, uvicorn_access_event
from app.observability.logging.redaction import SCRUB_MEMO_ATTRIBUTE, Redactor

__all__ = ["configure_logging"]

_HEAD_KEYS = ("timestamp", "level", "event", "logger")

# Handlers installed by the last `configure_logging` call, replaced by the next.
_installed_handlers: list[logging.Handler] = []


def _freeze_exc_info(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Turn ``exc_info=True`` into the actual exception while it is still current."""
    if event_dict.get("exc_info") is True:
        exc_info = sys.exc_info()
        event_dict["exc_info"] = exc_info if exc_info[0] is not None else False
    return event_dict


def _drop_time_and_level(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    """The file's format string already carries the time and the level name."""
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
    """A ProcessorFormatter that scrubs each record once and never leaks it on errors.

    The record gets a memo of scrubbed text (shared by every handler's copy of
    it), so the console and the file do not scrub the same text twice.

    If formatting fails, `logging.Handler.handleError` would print the record's
    message (our event dict, possibly with content) to stderr; instead a
    one-line placeholder naming the logger and the error type is written.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Format `record` through the processors, or a placeholder line on failure."""
        record.__dict__.setdefault(SCRUB_MEMO_ATTRIBUTE, {})
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


def _console_handler(
    stream: TextIO, redact: Redactor, foreign_pre_chain: list[Processor]
) -> logging.Handler:
    exception_processor, renderer = _console_renderer(_is_tty(stream))
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        _SafeProcessorFormatter(
            # The traceback is rendered before the redactor so that it is scrubbed too.
            processors=[exception_processor, redact, renderer],
            foreign_pre_chain=foreign_pre_chain,
            pass_foreign_args=True,
        )
    )
    return handler


def _formatted_file_handler(
    settings: Settings, redact: Redactor, foreign_pre_chain: list[Processor]
) -> tuple[logging.Handler | None, str | None]:
    """The rotating file with LOG_FORMAT around the key=value event, or why there is none."""
    handler, error = _file_handler(settings)
    if handler is None:
        return None, error
    try:
        handler.setFormatter(
            _SafeProcessorFormatter(
                processors=[format_exc_info, redact, _drop_time_and_level, _FileRenderer()],
                foreign_pre_chain=foreign_pre_chain,
                pass_foreign_args=True,
                fmt=settings.log_format,
                datefmt=settings.log_date_format,
                style=settings.log_format_style,
            )
        )
    except ValueError as exc:  # a LOG_FORMAT that logging rejects
        handler.close()
        return None, f"{type(exc).__name__}: {exc}"
    return handler, None


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging through one privacy-aware pipeline.

    Idempotent: a second call replaces the handlers the first one installed
    (handlers added by others, e.g. pytest's capture, are left alone).
    """
    redact = Redactor(privacy_mode=settings.log_privacy_mode)
    timestamper = TimeStamper(fmt="iso", utc=True)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
    ]
    foreign_pre_chain: list[Processor] = [*shared, uvicorn_access_event, timestamper]

    console_handler = _console_handler(
        sys.stderr if stream is None else stream, redact, foreign_pre_chain
    )
    console_handler.setLevel(_level_number(settings.log_level_console or settings.log_level))
    file_handler, file_error = _formatted_file_handler(settings, redact, foreign_pre_chain)
    handlers = [console_handler]
    if file_handler is not None:
        file_handler.setLevel(_level_number(settings.log_level_file or settings.log_level))
        handlers.append(file_handler)
    # Records below every handler's level are dropped before any work is done on them.
    level = min(handler.level for handler in handlers)

    root = logging.getLogger()
    _remove_installed_handlers(root)
    for handler in handlers:
        root.addHandler(handler)
        _installed_handlers.append(handler)
    root.setLevel(level)

    # uvicorn or Litestar may have installed their own handlers earlier.
    for name in ROUTED_LOGGERS:
        library_logger = logging.getLogger(name)
        for handler in list(library_logger.handlers):
            library_logger.removeHandler(handler)
        library_logger.propagate = True
    # faster-whisper logs each decoding's audio duration and detected language at INFO:
    # metadata of a user's audio (live audio included), kept out in privacy mode.
    logging.getLogger("faster_whisper").setLevel(
        logging.WARNING if settings.log_privacy_mode else logging.NOTSET
    )

    structlog.configure(
        processors=[
            *shared,
            _freeze_exc_info,
            StackInfoRenderer(),
            timestamper,
            ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.stdlib.LoggerFactory(),
        context_class=dict,
        cache_logger_on_first_use=False,
    )

    if file_error is not None:
        structlog.get_logger(__name__).warning(
            "log_file_unavailable", path=str(settings.log_path), error=file_error
        )
