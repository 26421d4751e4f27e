"""The logging pipeline: one renderer for structlog and stdlib, privacy first."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import logging.handlers
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from litestar import Litestar, Response, get
from litestar.exceptions import NotFoundException
from litestar.testing import TestClient

from app.config import Settings
from app.observability.logging import (
    configure_logging,
    litestar_logging_config,
    short_id,
    uvicorn_log_config,
)

TASK_ID = "0123456789abcdef0123456789abcdef"
UUID_WITH_DASHES = "12345678-9abc-def0-1234-56789abcdef0"
CLIENT_IP = "203.0.113.7"
LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "litestar")


class _TTYStream(io.StringIO):
    """A StringIO that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Put the root logger, uvicorn's and Litestar's loggers and structlog back as they were."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    saved = {
        name: (
            list(logging.getLogger(name).handlers),
            logging.getLogger(name).propagate,
            logging.getLogger(name).level,
        )
        for name in LIBRARY_LOGGERS
    }
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    for name, (logger_handlers, propagate, logger_level) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers = logger_handlers
        logger.propagate = propagate
        logger.setLevel(logger_level)
    structlog.reset_defaults()


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"log_file": "", "log_level": "INFO", "log_privacy_mode": True}
    values.update(overrides)
    return Settings(**values)


def _configure(**overrides: Any) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(_settings(**overrides), stream=stream)
    return stream


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _access_log(path: str) -> None:
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', f"{CLIENT_IP}:5000", "GET", path, "1.1", 200
    )


def _raise_with_secret_local() -> None:
    spoken_words = "hello world"
    raise ValueError("decoding failed after " + str(len(spoken_words)) + " chars")


def test_structlog_events_are_json_lines_on_a_non_tty_stream() -> None:
    """A non-TTY stream gets one JSON object a line with event, level, logger and timestamp."""
    stream = _configure()
    structlog.get_logger("app.test").info("job_finished", audio_s=11.0, processing_s=1.7)

    (line,) = _lines(stream)
    assert line["event"] == "job_finished"
    assert line["level"] == "info"
    assert line["logger"] == "app.test"
    assert line["audio_s"] == 11.0
    assert line["processing_s"] == 1.7
    assert "timestamp" in line


def test_tty_stream_gets_console_renderer() -> None:
    """A TTY stream gets structlog's human-readable console lines, not JSON."""
    stream = _TTYStream()
    configure_logging(_settings(), stream=stream)
    structlog.get_logger("app.test").info("job_finished", audio_s=11.0)

    output = stream.getvalue()
    assert "job_finished" in output
    assert "audio_s" in output
    with pytest.raises(json.JSONDecodeError):
        json.loads(output.splitlines()[0])


def test_privacy_mode_shortens_task_ids_and_uuids_in_text() -> None:
    """In privacy mode task_id keys and UUIDs inside event strings become abcd…wxyz."""
    stream = _configure(log_privacy_mode=True)
    log = structlog.get_logger("app.test")
    log.info("job_queued", task_id=TASK_ID)
    log.info(f"result for {TASK_ID} and {UUID_WITH_DASHES} expired")
    log.info("job_moved", detail=f"/api/v1/tasks/{TASK_ID}")

    output = stream.getvalue()
    assert TASK_ID not in output
    assert UUID_WITH_DASHES not in output
    first, second, third = _lines(stream)
    assert first["task_id"] == "0123\u2026cdef"
    assert second["event"] == "result for 0123\u2026cdef and 1234\u2026def0 expired"
    assert third["detail"] == "/api/v1/tasks/0123\u2026cdef"


@pytest.mark.parametrize("privacy_mode", [True, False])
def test_content_keys_never_appear_even_at_debug(privacy_mode: bool) -> None:
    """Transcripts, prompts, file names, segments and words are replaced by sizes in every mode."""
    stream = _configure(log_level="DEBUG", log_privacy_mode=privacy_mode)
    structlog.get_logger("app.test").debug(
        "job_result",
        text="the secret transcript",
        transcript="the secret transcript",
        prompt="secret prompt",
        initial_prompt="secret prompt",
        filename="secret-interview.mp3",
        file_name="secret-interview.mp3",
        segments=[{"text": "the secret transcript"}],
        words=["secret", "transcript"],
        options={"initial_prompt": "secret prompt", "beam_size": 5},
    )

    output = stream.getvalue()
    assert "secret" not in output
    (line,) = _lines(stream)
    assert line["event"] == "job_result"
    assert line["text_chars"] == len("the secret transcript")
    assert line["segments_count"] == 1
    assert line["words_count"] == 2
    assert line["options"] == {"initial_prompt_chars": len("secret prompt"), "beam_size": 5}
    for key in ("text", "transcript", "prompt", "initial_prompt", "filename", "file_name"):
        assert key not in line


@pytest.mark.parametrize("privacy_mode", [True, False])
def test_credentials_are_dropped_in_every_mode(privacy_mode: bool) -> None:
    """api_key and authorization values never reach the output."""
    stream = _configure(log_privacy_mode=privacy_mode)
    structlog.get_logger("app.test").info(
        "request_seen", api_key="sk-hidden", authorization="Bearer hidden"
    )

    assert "hidden" not in stream.getvalue()


def test_privacy_mode_drops_client_keys_and_emails() -> None:
    """Client address and e-mail keys are dropped, and addresses in text become <ip>/<email>."""
    stream = _configure(log_privacy_mode=True)
    structlog.get_logger("app.test").info(
        f"upload from {CLIENT_IP} and 2001:db8::7 by someone@example.org at 12:34:56",
        client=CLIENT_IP,
        client_addr=f"{CLIENT_IP}:5000",
        client_ip=CLIENT_IP,
        remote_addr=CLIENT_IP,
        ip=CLIENT_IP,
        peer=(CLIENT_IP, 5000),
        email="someone@example.org",
        x_email="someone@example.org",
        addr=(CLIENT_IP, 5000),
    )

    output = stream.getvalue()
    assert CLIENT_IP not in output
    assert "2001:db8::7" not in output
    assert "someone@example.org" not in output
    (line,) = _lines(stream)
    assert line["event"] == "upload from <ip> and <ip> by <email> at 12:34:56"
    assert line["addr"] == ["<ip>", 5000]
    for key in ("client", "client_addr", "client_ip", "remote_addr", "ip", "peer", "email"):
        assert key not in line


def test_privacy_mode_hides_client_and_query_values_of_uvicorn_access_log() -> None:
    """uvicorn's access line loses the client address and query values but keeps the path."""
    stream = _configure(log_privacy_mode=True)
    _access_log(f"/api/v1/status?task_id={TASK_ID}&lang=en")

    output = stream.getvalue()
    assert CLIENT_IP not in output
    assert TASK_ID not in output
    assert "lang=en" not in output
    (line,) = _lines(stream)
    assert line["event"] == "http_request"
    assert line["logger"] == "uvicorn.access"
    assert line["method"] == "GET"
    assert line["path"] == "/api/v1/status?task_id=\u2026&lang=\u2026"
    assert line["status"] == 200
    assert "client" not in line


def test_privacy_mode_masks_query_values_in_free_text() -> None:
    """A URL's query values inside a message (e.g. httpx) are masked, keys and path kept."""
    stream = _configure(log_privacy_mode=True)
    logging.getLogger("httpx").info(
        'HTTP Request: GET http://example.org/api/v1/status?task_id=%s&token=abc "HTTP/1.1 200 OK"',
        TASK_ID,
    )

    (line,) = _lines(stream)
    assert line["event"] == (
        "HTTP Request: GET http://example.org/api/v1/status"
        '?task_id=\u2026&token=\u2026 "HTTP/1.1 200 OK"'
    )


def test_outside_privacy_mode_ips_and_ids_appear() -> None:
    """With privacy mode off, client addresses, task ids and query values are logged."""
    stream = _configure(log_privacy_mode=False)
    structlog.get_logger("app.test").info(
        f"upload from {CLIENT_IP}", task_id=TASK_ID, client=CLIENT_IP
    )
    _access_log(f"/api/v1/status?task_id={TASK_ID}")

    first, second = _lines(stream)
    assert first["event"] == f"upload from {CLIENT_IP}"
    assert first["task_id"] == TASK_ID
    assert first["client"] == CLIENT_IP
    assert second["client"] == f"{CLIENT_IP}:5000"
    assert second["path"] == f"/api/v1/status?task_id={TASK_ID}"


def test_library_loggers_go_through_the_pipeline() -> None:
    """Records of stdlib loggers (faster_whisper, litestar) are rendered and scrubbed like ours."""
    stream = _configure(log_level="DEBUG", log_privacy_mode=True)
    logging.getLogger("faster_whisper").warning("Could not load %s", "a preprocessor config")
    logging.getLogger("litestar").warning("request %s failed for %s", TASK_ID, CLIENT_IP)

    first, second = _lines(stream)
    assert first == {
        "timestamp": first["timestamp"],
        "level": "warning",
        "event": "Could not load a preprocessor config",
        "logger": "faster_whisper",
    }
    assert second["event"] == "request 0123\u2026cdef failed for <ip>"
    assert second["level"] == "warning"


def test_audio_metadata_of_faster_whisper_is_logged_only_outside_privacy_mode() -> None:
    """Its per-decoding duration and detected language lines describe a user's audio."""
    for privacy, expected in ((True, 0), (False, 2)):
        stream = _configure(log_level="DEBUG", log_privacy_mode=privacy)
        logging.getLogger("faster_whisper").info("Processing audio with duration %s", "02:30:19")
        logging.getLogger("faster_whisper").debug(
            "Detected language '%s' with probability %.2f", "en", 0.95
        )
        assert len(_lines(stream)) == expected


def test_websocket_handshake_line_loses_client_and_query_in_privacy_mode() -> None:
    """uvicorn's 'client - "WebSocket /path?query" [accepted]' line becomes a scrubbed event."""
    stream = _configure(log_privacy_mode=True)
    path = f"/v1/realtime?intent=transcription&task={TASK_ID}"
    logging.getLogger("uvicorn.error").info(
        '%s - "WebSocket %s" [accepted]', f"{CLIENT_IP}:33005", path
    )
    logging.getLogger("uvicorn.error").info('%s - "WebSocket %s" %d', f"{CLIENT_IP}:1", path, 403)
    accepted, refused = _lines(stream)
    assert accepted["event"] == "websocket_request" and accepted["status"] == "accepted"
    assert refused["status"] == 403
    for line in (accepted, refused):
        assert "client" not in line
        assert line["path"] == "/v1/realtime?intent=\u2026&task=\u2026"
        assert CLIENT_IP not in str(line)


def test_log_level_filters_structlog_and_stdlib() -> None:
    """Below the configured level neither structlog nor stdlib records are written."""
    stream = _configure(log_level="WARNING")
    structlog.get_logger("app.test").info("ignored_info")
    logging.getLogger("faster_whisper").info("ignored stdlib info")
    structlog.get_logger("app.test").warning("kept_warning")

    assert [line["event"] for line in _lines(stream)] == ["kept_warning"]


def test_configure_logging_is_idempotent() -> None:
    """A second call replaces the first call's handlers instead of adding to them."""
    first_stream = _configure()
    second_stream = _configure()
    structlog.get_logger("app.test").info("once")

    assert first_stream.getvalue() == ""
    assert [line["event"] for line in _lines(second_stream)] == ["once"]


def test_rotating_file_uses_the_configured_format(tmp_path: Path) -> None:
    """The rotating log file applies LOG_FORMAT/LOG_DATE_FORMAT around a key=value message."""
    log_dir = tmp_path / "logs" / "nested"
    _configure(
        log_dir=str(log_dir),
        log_file="api.log",
        log_format="<%(levelname)s|%(asctime)s> %(message)s",
        log_date_format="%Y",
        log_rotation_when="MIDNIGHT",
        log_rotation_interval=1,
        log_rotation_backup_count=3,
    )
    structlog.get_logger("app.test").info(
        "job_finished", task_id=TASK_ID, audio_s=11.0, text="secret"
    )
    logging.getLogger("faster_whisper").warning("Could not load %s", "a config")

    handlers = [
        handler
        for handler in logging.getLogger().handlers
        if isinstance(handler, logging.handlers.TimedRotatingFileHandler)
    ]
    assert len(handlers) == 1
    assert handlers[0].when == "MIDNIGHT"
    assert handlers[0].backupCount == 3
    lines = (log_dir / "api.log").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("<INFO|")
    assert "> event='job_finished' task_id='0123\u2026cdef' audio_s=11.0 text_chars=6" in lines[0]
    assert "logger='app.test'" in lines[0]
    assert "secret" not in lines[0]
    assert "event='Could not load a config'" in lines[1]


def test_unwritable_log_dir_falls_back_to_console(tmp_path: Path) -> None:
    """A log dir that cannot be created logs log_file_unavailable and keeps the console."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file", encoding="utf-8")
    stream = _configure(log_dir=str(blocker / "logs"), log_file="api.log")
    structlog.get_logger("app.test").info("still_logging")

    first, second = _lines(stream)
    assert first["event"] == "log_file_unavailable"
    assert first["level"] == "warning"
    assert second["event"] == "still_logging"
    assert not any(
        isinstance(handler, logging.handlers.TimedRotatingFileHandler)
        for handler in logging.getLogger().handlers
    )


@pytest.mark.parametrize("tty", [False, True])
def test_exceptions_are_logged_without_local_variables(tmp_path: Path, tty: bool) -> None:
    """log.exception writes the traceback but never the values of local variables."""
    stream: io.StringIO = _TTYStream() if tty else io.StringIO()
    configure_logging(_settings(log_dir=str(tmp_path), log_file="api.log"), stream=stream)
    try:
        _raise_with_secret_local()
    except ValueError:
        structlog.get_logger("app.test").exception("job_failed", task_id=TASK_ID)

    file_text = (tmp_path / "api.log").read_text(encoding="utf-8")
    for output in (stream.getvalue(), file_text):
        assert "job_failed" in output
        assert "_raise_with_secret_local" in output
        assert "ValueError" in output
        assert "hello world" not in output
    if not tty:
        (line,) = _lines(stream)
        assert line["exception"][0]["exc_type"] == "ValueError"
        assert all("locals" not in frame for frame in line["exception"][0]["frames"])


def test_uvicorn_log_config_propagates_to_our_handlers(tmp_path: Path) -> None:
    """After uvicorn applies uvicorn_log_config(), its records reach our handlers exactly once."""
    config = uvicorn_log_config()
    assert config["version"] == 1
    assert config["disable_existing_loggers"] is False
    assert "handlers" not in config
    assert "formatters" not in config
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        assert config["loggers"][name] == {"handlers": [], "propagate": True}

    stream = _configure(log_dir=str(tmp_path), log_file="api.log")
    logging.config.dictConfig(config)
    logging.getLogger("uvicorn.error").info("Application startup complete.")

    assert [line["event"] for line in _lines(stream)] == ["Application startup complete."]
    file_text = (tmp_path / "api.log").read_text(encoding="utf-8")
    assert "Application startup complete." in file_text


def test_litestar_logging_config_keeps_our_handlers_and_logs_server_errors() -> None:
    """Litestar built with litestar_logging_config() keeps our root handlers and logs 5xx only."""
    stream = _configure(log_privacy_mode=True)
    handlers_before = list(logging.getLogger().handlers)

    @get(f"/boom/{TASK_ID}", sync_to_thread=False)
    def boom() -> str:
        raise RuntimeError("engine crashed")

    @get("/missing", sync_to_thread=False)
    def missing() -> str:
        raise NotFoundException()

    app = Litestar([boom, missing], logging_config=litestar_logging_config())
    assert logging.getLogger().handlers == handlers_before
    with TestClient(app) as client:
        assert client.get(f"/boom/{TASK_ID}").status_code == 500
        assert client.get("/missing").status_code == 404

    output = stream.getvalue()
    assert TASK_ID not in output
    failures = [line for line in _lines(stream) if line["event"] == "request_failed"]
    assert len(failures) == 1
    assert failures[0]["path"] == "/boom/0123\u2026cdef"
    assert failures[0]["error"] == "RuntimeError"
    assert failures[0]["exception"][0]["exc_value"] == "engine crashed"


def test_exceptions_with_their_own_handler_are_not_logged_as_server_errors() -> None:
    """A domain error that a handler turns into a 4xx (bad audio) is no request_failed."""
    stream = _configure(log_privacy_mode=True)

    class BadAudioError(ValueError):
        pass

    @get("/bad", sync_to_thread=False)
    def bad() -> str:
        raise BadAudioError("the upload is not audio")

    @get("/crash", sync_to_thread=False)
    def crash() -> str:
        raise KeyError("unexpected")

    def to_400(request: Any, exc: Exception) -> Response[dict[str, str]]:
        return Response({"detail": str(exc)}, status_code=400)

    app = Litestar(
        [bad, crash],
        logging_config=litestar_logging_config(),
        exception_handlers={BadAudioError: to_400},
    )
    with TestClient(app) as client:
        assert client.get("/bad").status_code == 400
        assert client.get("/crash").status_code == 500
    failures = [line for line in _lines(stream) if line["event"] == "request_failed"]
    assert [failure["error"] for failure in failures] == ["KeyError"]


def test_short_id_never_returns_a_long_id_whole() -> None:
    """short_id keeps the first and last 4 chars of long ids and only a tail of short ones."""
    assert short_id(TASK_ID) == "0123\u2026cdef"
    assert short_id("abcdefghi") == "abcd\u2026fghi"
    assert short_id("abcdefgh") == "\u2026efgh"
    assert short_id("abc") == "\u2026"


SEED_LOG_FORMAT = (
    "[{asctime}] [{levelname}][{processName}][{threadName}][{module}.{funcName}] {message}"
)


def _file_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_seed_brace_style_log_format_writes_the_file(tmp_path: Path) -> None:
    """The seed README's `{`-style LOG_FORMAT renders file lines instead of disabling the file."""
    stream = _configure(log_dir=str(tmp_path), log_file="api.log", log_format=SEED_LOG_FORMAT)
    structlog.get_logger("app.test").info("job_finished", audio_s=11.0)

    assert [line["event"] for line in _lines(stream)] == ["job_finished"]
    (line,) = _file_lines(tmp_path / "api.log")
    assert "[INFO][MainProcess][MainThread][test_logging.test_seed_brace_style_log_format" in line
    assert line.endswith("] event='job_finished' audio_s=11.0 logger='app.test'")


def test_console_and_file_have_their_own_levels(tmp_path: Path) -> None:
    """LOG_LEVEL_CONSOLE and LOG_LEVEL_FILE filter each handler; LOG_LEVEL is their default."""
    stream = _configure(
        log_dir=str(tmp_path),
        log_file="api.log",
        log_level="ERROR",
        log_level_console="WARNING",
        log_level_file="DEBUG",
    )
    log = structlog.get_logger("app.test")
    log.debug("debug_event")
    logging.getLogger("litestar").info("stdlib info")
    log.warning("warning_event")

    assert [line["event"] for line in _lines(stream)] == ["warning_event"]
    file_text = (tmp_path / "api.log").read_text(encoding="utf-8")
    for event in ("debug_event", "stdlib info", "warning_event"):
        assert event in file_text


def test_log_level_is_the_default_of_both_handlers(tmp_path: Path) -> None:
    """Without per-handler levels, LOG_LEVEL filters console and file alike."""
    stream = _configure(log_dir=str(tmp_path), log_file="api.log", log_level="WARNING")
    structlog.get_logger("app.test").info("ignored_info")
    structlog.get_logger("app.test").warning("kept_warning")

    assert [line["event"] for line in _lines(stream)] == ["kept_warning"]
    (line,) = _file_lines(tmp_path / "api.log")
    assert "kept_warning" in line


def test_each_record_is_scrubbed_once_for_console_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An access line written to console and file scrubs its long path once, not per handler."""
    from app.observability.logging import redaction

    scrubbed: list[str] = []
    real_scrub = redaction.scrub_text

    def counting_scrub(text: str) -> str:
        scrubbed.append(text)
        return real_scrub(text)

    monkeypatch.setattr(redaction, "scrub_text", counting_scrub)
    stream = _configure(log_dir=str(tmp_path), log_file="api.log")
    long_path = "/asr?output=" + "a@a.a" * 20_000
    _access_log(long_path)

    assert scrubbed.count(long_path) == 1
    (line,) = _lines(stream)
    assert line["path"] == "/asr?output=\u2026"
    assert "a@a.a" not in (tmp_path / "api.log").read_text(encoding="utf-8")
