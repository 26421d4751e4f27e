"""The job record and the per-process notifier that wakes whoever waits on a job.

A `Job` is plain data (a msgspec Struct): id, owner, options, state, timings,
progress, result and error. Nothing in it belongs to this process (no events,
no locks, no audio), so a queue or store outside the process can hold it
unchanged. The uploaded bytes travel beside the record in the queue, never in
it. Waiting for a change is the `JobNotifier`'s business: one per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import msgspec

from app.transcription.types import (
    LanguageDetection,
    Segment,
    SubtitleShape,
    TaskType,
    TranscribeOptions,
    Transcript,
)

__all__ = [
    "FINAL_STATES",
    "Job",
    "JobNotifier",
    "JobSource",
    "JobStage",
    "JobStatus",
    "Payload",
    "QueuedJob",
    "new_job_id",
]


class JobStatus(enum.StrEnum):
    """The seed's four task states."""

    PENDING = "pending"
    PROCESSING = "processing"
    FINISHED = "finished"
    FAILED = "failed"


class JobStage(enum.StrEnum):
    """What a job is doing within its status, for honest progress from the first second."""

    QUEUED = "queued"
    DECODING = "decoding"  # the upload is being turned into samples
    LOADING_MODEL = "loading_model"
    TRANSCRIBING = "transcribing"
    DONE = "done"


FINAL_STATES = frozenset({JobStatus.FINISHED, JobStatus.FAILED})


def new_job_id() -> str:
    """A random, unguessable task id."""
    return uuid.uuid4().hex


class Job(msgspec.Struct, kw_only=True):
    """One upload's life, from queued to finished or failed: plain, serialisable data."""

    id: str = msgspec.field(default_factory=new_job_id)
    task_type: TaskType
    options: TranscribeOptions
    time_uploaded: datetime
    owner: str | None = None
    # Who sent it, for the queue's fairness and per-client bounds: a hash of the API key
    # or of the address (never either in clear); None = a client of its own.
    client: str | None = None
    surface: str = "tasks"
    file_name: str | None = None
    # What was uploaded: its size, and whether it is raw 16 kHz s16le PCM (encode=false).
    upload_bytes: int = 0
    raw_pcm: bool = False
    # Seconds of audio: the probe's figure (or estimate) until the worker has decoded it.
    audio_duration: float = 0.0
    subtitle_shape: SubtitleShape = msgspec.field(default_factory=SubtitleShape)
    status: JobStatus = JobStatus.PENDING
    stage: JobStage = JobStage.QUEUED
    time_processing_started: datetime | None = None
    time_processing_finished: datetime | None = None
    processing_duration: float | None = None
    progress: float = 0.0
    # When the worker expects to be done (long audio, once it knows its pace); else None.
    expected_done_at: datetime | None = None
    # The share moves at a guessed pace (a model's first long file): no time left from it.
    progress_guessed: bool = False
    transcript: Transcript | None = None
    # Segments as they are decoded, for streaming clients; the transcript has them all at the end.
    partial_segments: list[Segment] = msgspec.field(default_factory=list)
    detection: LanguageDetection | None = None
    error: str | None = None
    target_model: str | None = None
    used_model: str | None = None
    used_device: str | None = None
    # Deadline on the store's monotonic clock once the job is final.
    expires_at: float | None = None
    # Set when somebody asks the job to stop (its client left, its owner deleted it, a
    # time limit); the worker checks it between segments.
    cancel_reason: str | None = None
    timed_out: bool = False

    @property
    def is_final(self) -> bool:
        """Finished or failed: nothing will change any more."""
        return self.status in FINAL_STATES

    @property
    def cancel_requested(self) -> bool:
        """Whether somebody asked this job to stop."""
        return self.cancel_reason is not None

    def finish(self, result: Transcript | LanguageDetection, now: datetime) -> None:
        """Record a result: the job is finished."""
        if isinstance(result, LanguageDetection):
            self.detection = result
        else:
            self.transcript = result
            self.partial_segments = []
        self.status = JobStatus.FINISHED
        self.stage = JobStage.DONE
        self.progress = 1.0
        self.time_processing_finished = now

    def fail(self, reason: str, now: datetime) -> None:
        """Record a failure with a reason people can read."""
        self.status = JobStatus.FAILED
        self.stage = JobStage.DONE
        self.error = reason
        self.partial_segments = []
        self.time_processing_finished = now

    def erase_content(self) -> None:
        """Drop everything a person said or named, so nothing of it lingers in memory."""
        self.transcript = None
        self.partial_segments = []
        self.detection = None
        self.file_name = None
        # Known speakers' names and reference clips are about people too.
        self.options = msgspec.structs.replace(self.options, initial_prompt=None, speakers=None)


_ALREADY_FINAL = asyncio.Event()
_ALREADY_FINAL.set()


class JobNotifier:
    """Per-process wake-ups for jobs that change: SSE streams, waiting routes, shutdown.

    Whoever reads a job takes a token first (`token`), then reads, then waits on
    the token: a change between the read and the wait is never lost. Tokens exist
    only while somebody waits for a job that can still change.
    """

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def token(self, job: Job) -> asyncio.Event:
        """The event the job's next change will set (already set for a final job)."""
        if job.is_final:
            return _ALREADY_FINAL
        return self._events.setdefault(job.id, asyncio.Event())

    def notify(self, job: Job) -> None:
        """Wake everyone waiting for a change of `job` (call on the event loop)."""
        event = self._events.pop(job.id, None)
        if event is not None:
            event.set()

    @staticmethod
    async def wait(token: asyncio.Event, max_wait_s: float | None = None) -> bool:
        """Wait until `token` is set: True, or False when `max_wait_s` passed first."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max_wait_s):
                await token.wait()
        return token.is_set()

    async def wait_until_final(self, job: Job) -> None:
        """Return once `job` is finished or failed."""
        while True:
            token = self.token(job)
            if job.is_final:
                return
            await token.wait()


Payload = bytes | bytearray
"""An upload exactly as it arrived (a file, or raw 16 kHz s16le PCM)."""


@dataclass(eq=False, slots=True)
class QueuedJob:
    """A job as the worker takes it: the record and its upload, until decoded."""

    job: Job
    payload: Payload | None


class JobSource(Protocol):
    """What the worker takes jobs from: this process's queue, or a cluster's Redis streams."""

    @property
    def running(self) -> list[Job]:
        """Jobs a worker has taken and not finished."""
        ...

    async def next_batch(self, max_size: int, key: Callable[[Job], object]) -> list[QueuedJob]:
        """Wait for the oldest job; add waiting jobs that share its (non-None) key.

        The batch holds at most `max_size` jobs; how long it waits for companions
        is the source's business.
        """
        ...

    def done(self, job: Job) -> None:
        """The worker has finished with `job`."""
        ...
