"""The `whisper-api` command line: its commands and options, without importing what they run.

Only argparse and os here, so `whisper-api serve` never loads the clients' libraries
(httpx, tqdm, PyAV's input devices) just to parse its own arguments.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

__all__ = ["CLIENT_FORMATS", "DEFAULT_SERVER", "build_parser", "environment_defaults"]

DEFAULT_SERVER = "http://127.0.0.1:3001"
CLIENT_FORMATS = ("txt", "srt", "vtt", "tsv", "json", "verbose_json", "diarized_json")


def environment_defaults() -> dict[str, str | None]:
    """WHISPER_API_URL and WHISPER_API_KEY, so scripts need not repeat them."""
    return {
        "server": os.environ.get("WHISPER_API_URL") or DEFAULT_SERVER,
        "api_key": os.environ.get("WHISPER_API_KEY") or None,
    }


def build_parser() -> argparse.ArgumentParser:
    """Every command with its options."""
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
    commands.add_parser(
        "prepare-models",
        help="verify the bundled models and assemble them into MODEL_CACHE_DIR (image builds)",
    )
    for target in (parser, serve):
        target.add_argument("--port", type=int, help="TCP port (PORT)")
        target.add_argument("--listen", help="address to bind (LISTEN)")
    _add_transcribe_parser(commands)
    _add_live_parser(commands)
    return parser


def _add_live_parser(commands: Any) -> None:
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
