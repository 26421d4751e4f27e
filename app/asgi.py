"""The composition root: `create_app(settings)` wires routes, errors, services and lifespan."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Response
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.logging.config import BaseLoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.static_files import create_static_files_router
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from app import __version__
from app.api.asr import AsrController
from app.api.dependencies import provide_owner
from app.api.docs import docs_assets_handler, swagger_plugin
from app.api.openai_audio import OpenAIController
from app.api.security import PUBLIC_OPT_KEY, cors_config, security_middleware
from app.api.system import SystemController
from app.api.tasks import TaskController
from app.config import Settings
from app.logging import litestar_logging_config
from app.metrics import RejectReason
from app.service import ShuttingDownError, TranscriptionService
from app.transcription.audio import AudioDecodeError, AudioTooLongError
from app.transcription.languages import UnknownLanguageError
from app.transcription.models import ModelManager, NoModelAllowedError
from app.transcription.queue import QueueFullError

__all__ = ["create_app", "find_web_dir"]


def find_web_dir(settings: Settings) -> Path | None:
    """The UI's files: WEB_DIR if set, else `web/` beside the package or in the working dir."""
    if settings.web_dir:
        return Path(settings.web_dir)
    for candidate in (Path(__file__).resolve().parent.parent / "web", Path.cwd() / "web"):
        if (candidate / "index.html").is_file():
            return candidate
    return None


def _error(status_code: int, detail: str, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        {"status_code": status_code, "detail": detail},
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


def _bad_input(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return _error(HTTP_400_BAD_REQUEST, str(exc))


def _too_long(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return _error(HTTP_413_REQUEST_ENTITY_TOO_LARGE, str(exc))


def _refusal_handler(service: TranscriptionService, status_code: int) -> Any:
    """429 for a full queue, 503 while shutting down; the service words both."""

    def handler(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        assert isinstance(exc, QueueFullError | ShuttingDownError)
        message, retry_after = service.refusal(exc)
        return _error(status_code, message, headers={"Retry-After": str(retry_after)})

    return handler


# Refusals of an upload (every POST route takes one) that happen before the service
# sees it; those the service raises itself are counted where they are raised.
_REJECTED_BY_STATUS: dict[int, RejectReason] = {
    400: "bad_request",
    401: "unauthorized",
    403: "unauthorized",
    413: "too_large",
    415: "bad_request",
    422: "bad_request",
    429: "rate_limited",
}


def _http_error_handler(service: TranscriptionService) -> Any:
    def handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
        reason = _REJECTED_BY_STATUS.get(exc.status_code)
        if request.method == "POST" and reason is not None:
            service.metrics.upload_rejected(reason)
        return _error(exc.status_code, exc.detail, headers=exc.headers)

    return handler


def _unknown_language_handler(service: TranscriptionService) -> Any:
    def handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        if request.method == "POST":
            service.metrics.upload_rejected("bad_request")
        return _bad_input(request, exc)

    return handler


def _quiet_for(config: BaseLoggingConfig, answered: tuple[type[Exception], ...]) -> Any:
    """Log no "request_failed" traceback for exceptions we answer on purpose.

    400s for bad input, 429 for a full queue and 503 while draining are no
    server errors; subclasses (e.g. each kind of undecodable audio) count too.
    """
    log_exception = config.exception_logging_handler
    if log_exception is None:
        return config

    def log_unexpected(logger: Any, scope: Any, traceback_lines: list[str]) -> None:
        if not isinstance(sys.exc_info()[1], answered):
            log_exception(logger, scope, traceback_lines)

    config.exception_logging_handler = log_unexpected
    return config


def create_app(
    settings: Settings,
    *,
    models: ModelManager | None = None,
    service: TranscriptionService | None = None,
) -> Litestar:
    """Build the application for `settings`; tests pass a service with a fake model."""
    service = service or TranscriptionService(settings, models or ModelManager(settings))

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    def provide_service() -> TranscriptionService:
        return service

    route_handlers: list[Any] = [TaskController, SystemController]
    # Compatibility surfaces: OpenAI's audio API and whisper-asr-webservice (Bazarr, subgen).
    route_handlers += [OpenAIController, AsrController]
    web_dir = find_web_dir(settings)
    # Swagger UI's files for /docs, from a package: the docs page contacts no other host.
    route_handlers.append(docs_assets_handler(web_dir / "favicon.svg" if web_dir else None))
    if web_dir is not None:
        route_handlers.append(
            create_static_files_router(
                path="/",
                directories=[web_dir],
                html_mode=True,
                include_in_schema=False,
                opt={PUBLIC_OPT_KEY: True},  # the UI's files need no API key
            )
        )
    exception_handlers: dict[int | type[Exception], Any] = {
        AudioTooLongError: _too_long,
        AudioDecodeError: _bad_input,
        UnknownLanguageError: _unknown_language_handler(service),
        NoModelAllowedError: _bad_input,
        QueueFullError: _refusal_handler(service, HTTP_429_TOO_MANY_REQUESTS),
        ShuttingDownError: _refusal_handler(service, HTTP_503_SERVICE_UNAVAILABLE),
        HTTPException: _http_error_handler(service),
    }
    logging_config = _quiet_for(
        litestar_logging_config(),
        tuple(k for k in exception_handlers if isinstance(k, type) and k is not HTTPException),
    )
    return Litestar(
        route_handlers=route_handlers,
        dependencies={
            "service": Provide(provide_service, sync_to_thread=False),
            "owner": Provide(provide_owner, sync_to_thread=False),
        },
        lifespan=[lifespan],
        # Forwarded headers, rate limit and API keys for every surface (app/api/security.py).
        middleware=security_middleware(settings),
        cors_config=cors_config(settings),
        exception_handlers=exception_handlers,
        openapi_config=OpenAPIConfig(
            title="whisper-api",
            version=__version__,
            description="Self-hosted speech-to-text: a fair queue in front of faster-whisper.",
            path="/docs",
            render_plugins=[swagger_plugin()],
        ),
        # Uploads are parsed by our own in-memory reader, which enforces MAX_UPLOAD_MB.
        request_max_body_size=None,
        # Our logging pipeline (privacy processors) stays in charge of every record.
        logging_config=logging_config,
        debug=False,
    )
