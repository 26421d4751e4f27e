"""Command line: `whisper-api [serve]` starts the server (settings from the environment);
`whisper-api transcribe FILE...` is the client for a running server."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.service import TranscriptionService

__all__ = ["main"]


def _parser(with_client: bool = True) -> argparse.ArgumentParser:
    """The command line; `with_client=False` leaves the client (httpx, tqdm) unimported."""
    parser = argparse.ArgumentParser(
        prog="whisper-api",
        description="Self-hosted speech-to-text server. Settings come from environment "
        "variables (see README); command-line options override PORT and LISTEN.",
    )
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the HTTP server (the default)")
    commands.add_parser(
        "bench",
        help="benchmark the server against faster-whisper called directly (see --help)",
        add_help=False,
    )
    commands.add_parser(
        "worker",
        help="QUEUE_BACKEND=redis: run a worker of a cluster (models, no HTTP)",
    )
    for target in (parser, serve):
        target.add_argument("--port", type=int, help="TCP port (PORT)")
        target.add_argument("--listen", help="address to bind (LISTEN)")
    if with_client:
        _add_transcribe_parser(commands)
    else:
        commands.add_parser("transcribe", help="send audio files to a running server")
    _add_live_parser(commands)
    return parser


def _add_live_parser(commands: Any) -> None:
    from app.client import environment_defaults

    defaults = environment_defaults()
    live = commands.add_parser(
        "live",
        help="stream the microphone (or a file) to a running server; print words as they come",
        description="Live transcription over /v1/realtime. Without --file the default "
        "capture device is recorded (ALSA through FFmpeg; --device to choose another).",
    )
    live.add_argument("--file", type=Path, help="stream this file at real-time pace instead")
    live.add_argument("--device", default="default", help="capture device (default: default)")
    live.add_argument(
        "--input-format", default="alsa", help="FFmpeg input device kind (default: alsa)"
    )
    live.add_argument(
        "--server",
        default=defaults["server"],
        help="server URL (default: $WHISPER_API_URL or %(default)s)",
    )
    live.add_argument("--language", help="spoken language (en, de, ...); omit to detect it")
    live.add_argument("--model", help="a model the server offers; omit for its live model")
    live.add_argument(
        "--keep",
        action="store_true",
        help="when the stream ends (end of --file, or Ctrl-C), keep the transcript as a task",
    )
    live.add_argument(
        "--api-key", default=defaults["api_key"], help="API key (default: $WHISPER_API_KEY)"
    )


def _add_transcribe_parser(commands: Any) -> None:
    from app.client import CLIENT_FORMATS, environment_defaults

    defaults = environment_defaults()
    client = commands.add_parser(
        "transcribe",
        help="send audio files to a running server and save the transcripts",
        description="Upload each FILE to a whisper-api server, show its progress and write "
        "the result (by default NAME.FORMAT in the current directory).",
    )
    client.add_argument("files", nargs="+", metavar="FILE", type=Path, help="audio or video")
    client.add_argument(
        "--server",
        default=defaults["server"],
        help="server URL (default: $WHISPER_API_URL or %(default)s)",
    )
    client.add_argument(
        "--format", dest="fmt", choices=CLIENT_FORMATS, default="txt", help="result format"
    )
    client.add_argument("--language", help="spoken language (en, de, ...); omit to detect it")
    client.add_argument("--translate", action="store_true", help="translate into English")
    client.add_argument("--model", help="a model the server offers; omit for its choice")
    client.add_argument(
        "--word-timestamps", action="store_true", help="time each word (verbose_json)"
    )
    client.add_argument(
        "--speakers",
        action="store_true",
        help="label who speaks (txt: 'A: ...' per turn; srt/vtt/json: speaker per segment)",
    )
    client.add_argument(
        "--num-speakers", type=int, metavar="N", help="with --speakers: the number of speakers"
    )
    client.add_argument(
        "--api-key", default=defaults["api_key"], help="API key (default: $WHISPER_API_KEY)"
    )
    client.add_argument(
        "-o",
        "--output",
        help="output file (one FILE), directory (several), or - for standard output",
    )
    client.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


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

    import uvicorn

    from app.asgi import build_service, create_app
    from app.logging import configure_logging, uvicorn_log_config
    from app.transcription.models import ModelManager

    configure_logging(settings)
    _limit_malloc_arenas()
    service = build_service(settings, ModelManager(settings))
    config = uvicorn.Config(
        create_app(settings, service=service),
        host=settings.listen,
        port=settings.port,
        log_config=uvicorn_log_config(),
        proxy_headers=False,  # forwarded headers are trusted only where configured
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    _graceful_server_class()(config, service).run()
    if service.worker is not None and service.worker.inference_busy:
        _exit_without_waiting_for_inference()
    return 0


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


def transcribe(args: argparse.Namespace) -> int:
    """Run the client for `whisper-api transcribe`."""
    from app.client import TranscribeRequest, run_transcribe

    return run_transcribe(
        TranscribeRequest(
            files=args.files,
            server=args.server,
            fmt=args.fmt,
            language=args.language,
            translate=args.translate,
            model=args.model,
            word_timestamps=args.word_timestamps,
            speakers=args.speakers or args.num_speakers is not None,
            num_speakers=args.num_speakers,
            api_key=args.api_key,
            output=args.output,
            quiet=args.quiet,
        )
    )


def live(args: argparse.Namespace) -> int:
    """Run `whisper-api live`."""
    from app.live_client import LiveRequest, run_live

    request = LiveRequest(
        server=args.server,
        api_key=args.api_key,
        file=args.file,
        device=args.device,
        input_format=args.input_format,
        language=args.language,
        model=args.model,
        keep=args.keep,
    )
    try:
        return asyncio.run(run_live(request))
    except KeyboardInterrupt:
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `whisper-api` console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["bench"]:
        from app.bench import main as bench_main

        return bench_main(arguments[1:])
    # A serving process never imports the client: its modules would stay resident.
    args = _parser(with_client=arguments[:1] == ["transcribe"]).parse_args(arguments)
    if args.command == "transcribe":
        return transcribe(args)
    if args.command == "worker":
        from app.worker_main import main as worker_main

        return worker_main()
    if args.command == "live":
        return live(args)
    return serve(port=args.port, listen=args.listen)


if __name__ == "__main__":
    sys.exit(main())
