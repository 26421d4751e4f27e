"""The web application: `create_app(settings)` wires routes, errors, the service and lifespan.

The service itself is built in `app.composition`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.static_files import create_static_files_router

from app import __version__
from app.api.asr import AsrController, asr_error
from app.api.dependencies import provide_owner
from app.api.docs import docs_assets_handler, openapi_config
from app.api.errors import ErrorRenderer, error_handler
from app.api.headers import add_response_headers
from app.api.openai_audio import OpenAIController, openai_error
from app.api.realtime.route import RealtimeRoute, realtime_route
from app.api.security import (
    PUBLIC_OPT_KEY,
    ConnectionRateLimit,
    cors_config,
    rate_limit_config,
    security_middleware,
)
from app.api.system import SystemController
from app.api.tasks import TaskController
from app.clock import Clock
from app.composition import build_service
from app.config import Settings
from app.observability.logging import litestar_logging_config
from app.observability.metrics import LiveMetrics
from app.service import TranscriptionService
from app.service.errors import ERROR_KINDS
from app.service.live import LiveService
from app.transcription.models import ModelManager

__all__ = ["create_app", "find_web_dir"]

# Each surface answers errors in its own shape; everything else in the task API's.
ERROR_SHAPES: dict[str, ErrorRenderer] = {
    "/v1/": openai_error,
    "/asr": asr_error,
    "/detect-language": asr_error,
}


def find_web_dir(settings: Settings) -> Path | None:
    """The UI's files: WEB_DIR if set, else `web/` beside the package or in the working dir."""
    if settings.web_dir:
        return Path(settings.web_dir)
    for candidate in (Path(__file__).resolve().parent.parent / "web", Path.cwd() / "web"):
        if (candidate / "index.html").is_file():
            return candidate
    return None


def _live_rate_limit(settings: Settings) -> ConnectionRateLimit | None:
    """RATE_LIMIT for live sessions too (Litestar's limiter sees HTTP only)."""
    config = rate_limit_config(settings)
    return ConnectionRateLimit(config) if config is not None else None


def create_app(
    settings: Settings,
    *,
    models: ModelManager | None = None,
    service: TranscriptionService | None = None,
    clock: Clock | None = None,
    live: LiveService | None = None,
) -> Litestar:
    """Build the application for `settings`; tests pass a service with a fake model.

    Without a service, `app.composition.build_service` builds the one `settings`
    ask for (this process's queue, store and worker, or a cluster's API node).
    """
    if service is None and models is None:
        # The batch model gets the cores the live model leaves (CPU_THREADS, LIVE_CPU_THREADS).
        models = ModelManager(msgspec.structs.replace(settings, cpu_threads=settings.batch_threads))
    service = service or build_service(settings, models or ModelManager(settings), clock=clock)
    # Live transcription: its own slots, threads and model beside the batch worker.
    live = live or LiveService(settings, LiveMetrics(service.metrics.registry))

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await service.start()
        live.start()
        try:
            yield
        finally:
            await live.stop()
            await service.stop()

    def provide_service() -> TranscriptionService:
        return service

    route_handlers: list[Any] = [TaskController, SystemController]
    # Compatibility surfaces: OpenAI's audio API and whisper-asr-webservice (Bazarr, subgen).
    route_handlers += [OpenAIController, AsrController]
    # OpenAI's Realtime API, transcription only (it checks API keys itself: app/api/realtime).
    route_handlers.append(
        realtime_route(
            RealtimeRoute(
                live,
                service,
                api_keys=settings.api_keys,
                clock=service.clock,
                rate_limit=_live_rate_limit(settings),
            )
        )
    )
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
    # One handler for every error: domain errors by the table in app.service.errors, Litestar's
    # own by their status. Listed per class so the request logger knows them as answered.
    handle = error_handler(service, ERROR_SHAPES)
    exception_handlers: dict[int | type[Exception], Any] = {
        **dict.fromkeys(ERROR_KINDS, handle),
        HTTPException: handle,
        Exception: handle,
    }
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
        # Browser protections on every answer; no-store on everything with task state.
        before_send=[add_response_headers],
        openapi_config=openapi_config(version=__version__, api_keys=bool(settings.api_keys)),
        # Uploads are parsed by our own in-memory reader, which enforces MAX_UPLOAD_MB.
        request_max_body_size=None,
        # Our logging pipeline (privacy processors) stays in charge of every record.
        logging_config=litestar_logging_config(),
        debug=False,
    )
