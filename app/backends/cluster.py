"""The composition of a cluster's processes: an API node (`serve`) and a worker (`worker`)."""

from __future__ import annotations

import os
import socket

import msgspec

from app.backends.redis_conn import connect
from app.backends.redis_keys import Keys
from app.backends.redis_store import RedisBackend
from app.clock import Clock
from app.config import Settings
from app.service import TranscriptionService
from app.store import MemoryTaskStore
from app.transcription.jobs import JobNotifier
from app.transcription.models import ModelManager
from app.transcription.queue import MemoryJobQueue

__all__ = ["build_api_node", "worker_name"]

MIB = 1024 * 1024


def build_api_node(
    settings: Settings, models: ModelManager, *, clock: Clock, keys: Keys | None = None
) -> TranscriptionService:
    """An API node: every job and task in Redis, no model and no worker in this process.

    The models are still known here (to refuse a job no allowed model can do with
    400), never loaded. The node's own queue and store stay empty: on shutdown it
    has no waiting job to fail, and the cluster's jobs outlive it in Redis.
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
    local_queue = MemoryJobQueue(
        max_waiting=settings.max_task_queue_size,
        max_waiting_bytes=settings.max_queued_mb * MIB,
        notifier=notifier,
        clock=clock,
    )
    return TranscriptionService(
        settings,
        models,
        queue=local_queue,
        store=MemoryTaskStore(ttl_s=1, refresh_on_read=False, clock=clock),
        notifier=notifier,
        clock=clock,
        worker=None,
        backend=backend,
    )


def worker_name() -> str:
    """This worker's name in the fleet: host and process id (no secret, no path)."""
    return f"{socket.gethostname()}-{os.getpid()}"
