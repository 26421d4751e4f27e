"""`whisper-api serve`: the HTTP server under uvicorn, drained on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.service import TranscriptionService

__all__ = ["serve"]


def serve(port: int | None = None, listen: str | None = None) -> int:
    """Load settings, set up logging and run uvicorn until stopped."""
    from app.config import SettingsError, load_settings

    given = (("port", port), ("listen", listen))
    overrides: dict[str, object] = {key: value for key, value in given if value is not None}
    try:
        settings = load_settings(None, **overrides)
    except SettingsError as exc:
        print(f"whisper-api: {exc}", file=sys.stderr)
        return 2

    import msgspec
    import uvicorn

    from app.asgi import create_app
    from app.composition import build_service
    from app.observability.logging import configure_logging, uvicorn_log_config
    from app.transcription.models import ModelManager

    configure_logging(settings)
    _limit_malloc_arenas()
    # The batch model gets the cores the live model leaves (CPU_THREADS, LIVE_CPU_THREADS).
    batch_settings = msgspec.structs.replace(settings, cpu_threads=settings.batch_threads)
    service = build_service(settings, ModelManager(batch_settings))
    config = uvicorn.Config(
        create_app(settings, service=service),
        host=settings.listen,
        port=settings.port,
        log_config=uvicorn_log_config(),
        proxy_headers=False,  # forwarded headers are trusted only where configured
        server_header=False,
        timeout_graceful_shutdown=10,
        # A live client's messages waiting to be read (each up to 16 MiB, a 15 MiB
        # append): uvicorn's default of 32 would let one connection hold 512 MiB.
        ws_max_queue=WS_MAX_QUEUE,
    )
    _graceful_server_class()(config, service).run()
    if service.worker is not None and service.worker.inference_busy:
        _exit_without_waiting_for_inference()
    return 0


# Messages of one websocket read ahead of the application (see above).
WS_MAX_QUEUE = 2


def _exit_without_waiting_for_inference() -> None:
    """Exit now, not when a stopped job's model call returns.

    The job has already failed with its reason and its clients were told; a
    model call cannot be interrupted mid-batch, and Python would otherwise wait
    for the inference thread (up to minutes of discarded work) before exiting.
    """
    import logging
    import os

    logging.shutdown()  # flush the log handlers, as a normal exit would
    os._exit(0)


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """Keep glibc from opening an arena per inference thread.

    Each model load runs CTranslate2 on fresh threads; with glibc's default of up to
    8 arenas per core, every load/unload cycle left ~35 MiB behind that malloc_trim
    could not return. Two arenas keep the resident size flat across cycles.
    """
    import contextlib
    import ctypes

    m_arena_max = -8  # from glibc's malloc.h
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(m_arena_max, arenas)


def _graceful_server_class() -> type[Any]:
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """SIGTERM is how services are stopped: drain, then exit 0.

        On SIGTERM the server keeps listening while the service drains: /readyz
        turns 503 at once (a balancer stops sending work), uploads get 503 with
        Retry-After, status and result routes keep answering, waiting jobs fail
        with a reason and the running job may finish within SHUTDOWN_GRACE_S.
        A job still running when the grace ends is stopped and fails with a reason
        while its clients (event streams, pollers, synchronous requests) are still
        connected; only then does uvicorn stop. A second SIGTERM ends the grace at
        once the same way; a third one, or SIGINT (Ctrl-C), stops at once.

        uvicorn re-raises the captured signal once it has shut down, which turns
        every orderly stop into "killed by SIGTERM"; SIGINT keeps that behaviour.
        """

        def __init__(self, config: uvicorn.Config, service: TranscriptionService) -> None:
            super().__init__(config)
            self._service = service
            self._drain_requested = False
            self._grace_cut = False
            self._drain_task: asyncio.Task[None] | None = None

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # Runs as a signal handler: only set flags; on_tick starts the drain.
            if sig == signal.SIGTERM and not self._drain_requested and not self.should_exit:
                self._drain_requested = True
                self._service.begin_draining()
                return
            self._service.end_grace()
            if sig == signal.SIGTERM and self._drain_requested and not self._grace_cut:
                # A second SIGTERM: the drain stops the running job now and exits once
                # its clients have heard (a third one exits at once).
                self._grace_cut = True
                return
            super().handle_exit(sig, frame)
            if sig == signal.SIGTERM and sig in self._captured_signals:
                self._captured_signals.remove(sig)

        async def on_tick(self, counter: int) -> bool:
            if self._drain_requested and self._drain_task is None:
                self._drain_task = asyncio.get_running_loop().create_task(
                    self._drain_then_exit(), name="shutdown-drain"
                )
            return bool(await super().on_tick(counter))

        async def _drain_then_exit(self) -> None:
            try:
                await self._service.drain(pickup=True)
            finally:
                self.should_exit = True

    return GracefulServer
