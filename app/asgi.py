"""The composition root: `create_app(settings)` wires routes, errors, services and lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.static_files import create_static_files_router

from app import __version__
from app.api.asr import AsrController, asr_error
from app.api.dependencies import provide_owner
from app.api.docs import docs_assets_handler, swagger_plugin
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
from app.backends.local import LocalBackend, MemoryJobQueue, MemoryTaskStore
from app.backends.redis.conn import connect
from app.backends.redis.keys import Keys
from app.backends.redis.store import RedisBackend
from app.clock import Clock, SystemClock
from app.config import Settings
from app.observability.logging import litestar_logging_config
from app.observability.metrics import LiveMetrics
from app.service import TranscriptionService
from app.service.errors import ERROR_KINDS
from app.service.live import LiveService
from app.service.uploads import UploadGate
from app.transcription.jobs import JobNotifier
from app.transcription.models import ModelManager
from app.transcription.speakers.stage import SpeakerStage
from app.transcription.worker import Worker, WorkerLimits

__all__ = ["build_api_node", "build_service", "create_app", "find_web_dir", "worker_limits"]

MIB = 1024 * 1024

# Each surface answers errors in its own shape; everything else in the task API's.
ERROR_SHAPES: dict[str, ErrorRenderer] = {
    "/v1/": openai_error,
    "/asr": asr_error,
    "/detect-language": asr_error,
}


def worker_limits(settings: Settings) -> WorkerLimits:
    """The worker's limits from the settings (one process, or a cluster worker)."""
    return WorkerLimits(
        batch_size=settings.batch_size,
        batched_inference=settings.batched_inference,
        max_audio_s=settings.max_audio_duration_s,
        time_limit_floor_s=settings.job_timeout_min_s,
        time_limit_factor=settings.job_timeout_factor,
    )


def build_service(
    settings: Settings, models: ModelManager, *, clock: Clock | None = None
) -> TranscriptionService:
    """The in-memory deployment: one process holds the queue, the store and the worker.

    With QUEUE_BACKEND=redis this process is an API node of a cluster instead
    (`build_api_node`): no model and no worker here.
    """
    clock = clock or SystemClock()
    if settings.queue_backend == "redis":
        return build_api_node(settings, models, clock=clock)
    notifier = JobNotifier()
    uploads = UploadGate(
        limit=settings.max_uploads_in_flight, timeout_s=settings.upload_timeout_s, clock=clock
    )
    queue = MemoryJobQueue(
        max_waiting=settings.max_task_queue_size,
        max_waiting_bytes=settings.max_queued_mb * MIB,
        notifier=notifier,
        clock=clock,
        # Bodies still arriving: a batch lingers briefly so they can join it.
        uploads_in_flight=lambda: uploads.in_flight,
    )
    store = MemoryTaskStore(
        ttl_s=settings.delete_results_after_m * 60,
        refresh_on_read=settings.refresh_expiration_time_on_usage,
        clock=clock,
    )
    worker = Worker(
        queue,
        models,
        notifier=notifier,
        clock=clock,
        limits=worker_limits(settings),
        speaker_stage=SpeakerStage(settings.speaker_model),
    )
    service = TranscriptionService(
        settings,
        models,
        backend=LocalBackend(queue, store),
        notifier=notifier,
        clock=clock,
        worker=worker,
        uploads=uploads,
    )
    worker.on_job_done = service.job_done
    return service


def build_api_node(
    settings: Settings, models: ModelManager, *, clock: Clock, keys: Keys | None = None
) -> TranscriptionService:
    """An API node: every job and task in Redis, no model and no worker in this process.

    The models are still known here (to refuse a job no allowed model can do with
    400), never loaded.
    """
    settings = msgspec.structs.replace(settings, load_model_on_startup=False)
    notifier = JobNotifier()
    backend = RedisBackend(
        connect(settings),
        keys=keys or Keys(),
        notifier=notifier,
        clock=clock,
        max_jobs=settings.max_task_queue_size,
        max_bytes=settings.max_queued_mb * MIB,
        ttl_s=settings.delete_results_after_m * 60,
        refresh_on_read=settings.refresh_expiration_time_on_usage,
    )
    return TranscriptionService(
        settings, models, backend=backend, notifier=notifier, clock=clock, worker=None
    )


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

    Without a service, the in-memory deployment is built here: queue, store,
    notifier and worker in this process (`build_service`).
    """
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
        logging_config=litestar_logging_config(),
        debug=False,
    )
