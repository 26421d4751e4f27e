"""`whisper-api transcribe`: upload files through the task API, follow progress, save results.

For people and scripts: each file is uploaded, a progress bar follows the task's
server-sent events (its place in the queue, then how much of the audio is done),
and the result is written in the asked format. Any failure is one line on stderr
and a non-zero exit status; the other files still run.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import msgspec
from httpx_sse import SSEError, connect_sse
from tqdm import tqdm

from app.cli.parser import CLIENT_FORMATS, DEFAULT_SERVER

__all__ = [
    "CLIENT_FORMATS",
    "DEFAULT_SERVER",
    "ClientError",
    "TaskEvent",
    "TranscribeRequest",
    "Transcription",
    "output_path",
    "run_transcribe",
]

EXTENSIONS = {fmt: fmt for fmt in CLIENT_FORMATS} | {
    "verbose_json": "json",
    "diarized_json": "json",
}
# Uploads of long recordings take a while; waiting for events has no limit of its own.
UPLOAD_TIMEOUT = httpx.Timeout(30.0, read=600.0, write=600.0)
EVENTS_TIMEOUT = httpx.Timeout(30.0, read=None)
BAR_FORMAT = (
    "{desc} {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s of audio [{elapsed}<{remaining}]"
)
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


class ClientError(Exception):
    """One file could not be transcribed; the message is the one line to show."""


@dataclass(frozen=True, slots=True)
class TranscribeRequest:
    """What `whisper-api transcribe` was asked to do."""

    files: Sequence[Path]
    server: str = DEFAULT_SERVER
    fmt: str = "txt"
    language: str | None = None
    translate: bool = False
    model: str | None = None
    word_timestamps: bool = False
    # Speaker labels (diarize), and the number of speakers when known.
    speakers: bool = False
    num_speakers: int | None = None
    api_key: str | None = None
    output: str | None = None
    quiet: bool = False


class TaskEvent(msgspec.Struct):
    """The data of one progress event of /api/v1/tasks/{id}/events."""

    status: str
    position_in_queue: int | None = None
    progress: float = 0.0
    error: str | None = None


def output_path(source: Path, fmt: str, output: str | None, several: bool) -> Path | None:
    """Where a file's result goes: None means stdout (`-o -`).

    Without -o: `<name>.<ext>` in the current directory. With -o and one file: that
    path. With -o and several files: a directory that gets `<name>.<ext>` for each.
    """
    name = f"{source.stem}.{EXTENSIONS[fmt]}"
    if output == "-":
        return None
    if output is None:
        return Path(name)
    target = Path(output)
    if several or target.is_dir():
        return target / name
    return target


def _error_message(response: httpx.Response) -> str:
    """The server's own words for a failed request, from any of our error shapes."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
        if "detail" in body:
            return str(body["detail"])
    return response.reason_phrase


def _check(response: httpx.Response, what: str) -> httpx.Response:
    if response.is_success:
        return response
    reason = _error_message(response)
    raise ClientError(f"{what} failed ({response.status_code}): {reason}")


class Transcription:
    """One file's trip: upload, follow, fetch, write."""

    def __init__(
        self,
        client: httpx.Client,
        request: TranscribeRequest,
        source: Path,
        progress_to: IO[str] | None = None,
    ) -> None:
        self.client = client
        self.request = request
        self.source = source
        self.progress_to = progress_to or sys.stderr
        self.description = f"{source.name}: uploaded"

    def upload(self) -> dict[str, Any]:
        """Send the file to /api/v1/transcribe (or /translate); the task comes back at once."""
        route = "/api/v1/translate" if self.request.translate else "/api/v1/transcribe"
        fields = {
            "language": self.request.language,
            "model": self.request.model,
            "word_timestamps": "true" if self.request.word_timestamps else None,
            "diarize": "true" if self.request.speakers else None,
            "num_speakers": str(self.request.num_speakers) if self.request.num_speakers else None,
        }
        try:
            with self.source.open("rb") as handle:
                response = self.client.post(
                    route,
                    files={"file": (self.source.name, handle)},
                    data={key: value for key, value in fields.items() if value},
                    timeout=UPLOAD_TIMEOUT,
                )
        except OSError as exc:
            raise ClientError(f"cannot read the file: {exc.strerror or exc}") from None
        task: dict[str, Any] = _check(response, "upload").json()
        return task

    def follow(self, task: dict[str, Any]) -> TaskEvent:
        """Show progress until the task is final; falls back to polling if events break off."""
        audio_s = float(task.get("audio_duration") or 0.0)
        with self.bar(audio_s) as bar:
            last = TaskEvent(status=str(task.get("status", "pending")))
            try:
                for event in self._events(task["task_id"]):
                    last = event
                    self.show(bar, event, audio_s)
                    if event.status in ("finished", "failed"):
                        return event
            except (httpx.TransportError, SSEError):
                pass  # a proxy may cut long streams: ask for the state instead
            while last.status not in ("finished", "failed"):
                response = self.client.get(f"/api/v1/tasks/{task['task_id']}")
                last = msgspec.convert(_check(response, "status").json(), TaskEvent)
                self.show(bar, last, audio_s)
                if last.status not in ("finished", "failed"):
                    time.sleep(1.0)
            return last

    def _events(self, task_id: str) -> Iterator[TaskEvent]:
        url = f"/api/v1/tasks/{task_id}/events"
        with connect_sse(self.client, "GET", url, timeout=EVENTS_TIMEOUT) as source:
            _check(source.response, "following the task")
            for sse in source.iter_sse():
                if sse.data:
                    yield msgspec.json.decode(sse.data, type=TaskEvent)

    def bar(self, audio_s: float) -> tqdm[Any]:
        """A progress bar over the seconds of audio (hidden with --quiet)."""
        return tqdm(
            total=round(audio_s, 1),
            desc=self.description,
            bar_format=BAR_FORMAT,
            file=self.progress_to,
            disable=self.request.quiet,
            leave=True,
            dynamic_ncols=True,
        )

    def show(self, bar: tqdm[Any], event: TaskEvent, audio_s: float) -> None:
        """Put one event on the bar: the queue place, or the seconds of audio done."""
        if event.status == "pending":
            ahead = max(0, (event.position_in_queue or 1) - 1)
            state = f"queued, {ahead} ahead" if ahead else "queued, next"
        elif event.status == "processing":
            state = "transcribing"
        else:
            state = event.status
        description = f"{self.source.name}: {state}"
        changed = description != self.description
        self.description = description
        bar.set_description_str(description, refresh=False)
        done = round(min(1.0, event.progress) * audio_s, 1)
        if done > bar.n:
            bar.update(done - bar.n)  # redraws at most every 0.1 s
        elif changed:
            bar.refresh()

    def fetch(self, task_id: str) -> bytes:
        """The finished task's result in the asked format."""
        response = self.client.get(
            f"/api/v1/tasks/{task_id}/result", params={"format": self.request.fmt}
        )
        return _check(response, "fetching the result").content

    def cancel(self, task_id: str) -> None:
        """Best effort: tell the server to drop the task (Ctrl-C)."""
        with contextlib.suppress(httpx.HTTPError):
            self.client.delete(f"/api/v1/tasks/{task_id}", timeout=5.0)


def _write(result: bytes, target: Path | None, stdout: IO[bytes]) -> None:
    if target is None:
        stdout.write(result)
        stdout.flush()
        return
    if target.parent != Path():
        target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(result)


def _transcribe_one(
    client: httpx.Client,
    request: TranscribeRequest,
    source: Path,
    stdout: IO[bytes],
    stderr: IO[str],
) -> Path | None:
    job = Transcription(client, request, source, stderr)
    if not source.is_file():
        raise ClientError("no such file")
    task = job.upload()
    try:
        final = job.follow(task)
    except KeyboardInterrupt:
        job.cancel(task["task_id"])
        raise
    if final.status != "finished":
        raise ClientError(f"the server could not transcribe it: {final.error or 'unknown reason'}")
    target = output_path(source, request.fmt, request.output, len(request.files) > 1)
    _write(job.fetch(task["task_id"]), target, stdout)
    return target


def _headers(api_key: str | None) -> dict[str, str]:
    # Sent both ways: OpenAI-style clients use Authorization, scripts often X-API-Key.
    if not api_key:
        return {}
    return {"Authorization": f"Bearer {api_key}", "X-API-Key": api_key}


def run_transcribe(
    request: TranscribeRequest,
    *,
    client: httpx.Client | None = None,
    stdout: IO[bytes] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Transcribe every file; 0 when all succeeded, 1 when any failed, 130 on Ctrl-C."""
    err = stderr or sys.stderr
    out = stdout or sys.stdout.buffer
    own_client = client is None
    http = client or httpx.Client(base_url=request.server.rstrip("/"))
    http.headers.update(_headers(request.api_key))
    failures = 0
    try:
        for source in request.files:
            try:
                target = _transcribe_one(http, request, source, out, err)
            except ClientError as exc:
                failures += 1
                print(f"whisper-api: {source}: {exc}", file=err)
            except httpx.TransportError as exc:
                failures += 1
                print(
                    f"whisper-api: {source}: cannot reach {request.server}: "
                    f"{_transport_reason(exc)}",
                    file=err,
                )
            else:
                if target is not None and not request.quiet:
                    print(f"{source}: wrote {target}", file=err)
    except KeyboardInterrupt:
        print("whisper-api: interrupted", file=err)
        return EXIT_INTERRUPTED
    finally:
        if own_client:
            http.close()
    return EXIT_FAILED if failures else 0


def _transport_reason(exc: httpx.TransportError) -> str:
    text = str(exc).strip()
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or host unknown" + (f" ({text})" if text else "")
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return text or type(exc).__name__


def main(args: argparse.Namespace) -> int:
    """Run the client for `whisper-api transcribe`."""
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
