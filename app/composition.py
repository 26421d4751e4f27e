"""Where the parts of a deployment are built: the service of one process or of a cluster's API node.

`build_service` is the memory deployment (queue, store and worker in this
process); with QUEUE_BACKEND=redis it builds an API node instead
(`build_api_node`: jobs and tasks in Redis, no model loaded, no worker).
`worker_limits` turns the settings into the worker's limits for both kinds of
worker (this process's, and `whisper-api worker`).
"""

from __future__ import annotations

import msgspec

from app.backends.local import LocalBackend, MemoryJobQueue, MemoryTaskStore
from app.backends.redis.conn import connect
from app.backends.redis.keys import Keys
from app.backends.redis.store import RedisBackend
from app.clock import Clock, SystemClock
from app.config import Settings
from app.service import TranscriptionService
from app.service.uploads import PaceRules, UploadGate
from app.transcription.jobs import JobNotifier
from app.transcription.models import ModelManager
from app.transcription.speakers.stage import SpeakerStage
from app.transcription.worker import Worker, WorkerLimits

__all__ = ["build_api_node", "build_service", "worker_limits"]

MIB = 1024 * 1024


def worker_limits(settings: Settings) -> WorkerLimits:
    """The worker's limits from the settings (one process, or a cluster worker)."""
    return WorkerLimits(
        batch_size=settings.batch_size,
        batched_inference=settings.batched_inference,
        max_audio_s=settings.max_audio_duration_s,
        time_limit_floor_s=settings.job_timeout_min_s,
        time_limit_factor=settings.job_timeout_factor,
    )


def upload_gate(settings: Settings, clock: Clock) -> UploadGate:
    """The upload places and the body pace of this process (docs/SECURITY.md)."""
    return UploadGate(
        limit=settings.max_uploads_in_flight,
        per_client=settings.uploads_in_flight_per_client,
        timeout_s=settings.upload_timeout_s,
        pace=PaceRules(
            idle_timeout_s=settings.upload_idle_timeout_s,
            min_rate_bps=settings.upload_min_rate_bps,
            grace_s=settings.upload_rate_grace_s,
        ),
        clock=clock,
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
    uploads = upload_gate(settings, clock)
    queue = MemoryJobQueue(
        max_waiting=settings.max_task_queue_size,
        max_waiting_bytes=settings.max_queued_mb * MIB,
        max_per_client=settings.queued_per_client,
        policy=settings.queue_policy,
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
        max_per_client=settings.queued_per_client,
        policy=settings.queue_policy,
        ttl_s=settings.delete_results_after_m * 60,
        refresh_on_read=settings.refresh_expiration_time_on_usage,
        max_wait_s=settings.job_max_wait_s,
    )
    return TranscriptionService(
        settings,
        models,
        backend=backend,
        notifier=notifier,
        clock=clock,
        worker=None,
        uploads=upload_gate(settings, clock),
    )
