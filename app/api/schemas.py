"""msgspec structs for every request and response of the HTTP surfaces."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec
from litestar.openapi.datastructures import ResponseSpec

from app.clock import Clock
from app.transcription.jobs import Job, JobStage, JobStatus

__all__ = [
    "DecoderStatus",
    "ErrorBody",
    "FleetWorkerView",
    "PrivacyInfo",
    "ProgressEvent",
    "TaskDeleted",
    "TaskResponse",
    "UserInfo",
    "VersionInfo",
    "error_responses",
    "progress_stage",
    "task_response",
]


class TaskResponse(msgspec.Struct, kw_only=True):
    """A task: its state, queue place, model, transcript, progress, error and expiry."""

    task_id: str
    task_type: str
    status: str
    time_uploaded: datetime
    transcript: str | None = None
    source_language: str | None = None
    position_in_queue: int | None = None
    processing_duration: float | None = None
    time_processing_finished: datetime | None = None
    target_model_size: str | None = None
    used_model_size: str | None = None
    used_device: str | None = None
    progress: float = 0.0
    stage: str = "queued"
    audio_duration: float = 0.0
    # About how many seconds the rest will take, else null: long audio from the model's pace
    # (measured on earlier batches, of this file or the ones before), else once a share is done.
    seconds_left: float | None = None
    error: str | None = None
    expires_at: datetime | None = None


def _wall_clock(monotonic_deadline: float | None, clock: Clock) -> datetime | None:
    if monotonic_deadline is None:
        return None
    return clock.now() + timedelta(seconds=monotonic_deadline - clock.monotonic())


def progress_stage(job: Job) -> str:
    """The step a job is at, from what the worker has recorded on it so far."""
    if job.is_final:
        return str(job.status)
    if job.status is not JobStatus.PROCESSING:
        return "queued"
    if job.stage in (JobStage.DECODING, JobStage.LOADING_MODEL):
        return str(job.stage)
    if job.progress <= 0 and not job.partial_segments:
        return "first_window"
    return "transcribing"


def seconds_left(job: Job, clock: Clock) -> float | None:
    """An estimate of the seconds a running job still needs.

    Long audio: when the worker expects to be done, from the model's measured pace
    (known from the file's first batch, or from the files before it). Otherwise, and
    once that moment has passed, the pace so far (audio done per second since
    processing started, the model's first part included) carried over the rest; None
    before the first part is done, and while the share moves at a guessed pace.
    """
    if job.status is not JobStatus.PROCESSING or job.progress_guessed:
        return None
    if job.expected_done_at is not None:
        expected = (job.expected_done_at - clock.now()).total_seconds()
        if expected >= 1:
            return round(expected, 1)
    started = job.time_processing_started
    if started is None or not 0 < job.progress < 1:
        return None
    elapsed = (clock.now() - started).total_seconds()
    if elapsed <= 0:
        return None
    return round(elapsed * (1 - job.progress) / job.progress, 1)


def task_response(job: Job, position: int | None, clock: Clock) -> TaskResponse:
    """Build the public view of a job."""
    transcript = job.transcript
    return TaskResponse(
        task_id=job.id,
        task_type=job.task_type,
        status=str(job.status),
        time_uploaded=job.time_uploaded,
        transcript=transcript.text if transcript is not None else None,
        source_language=transcript.language if transcript is not None else job.options.language,
        position_in_queue=position,
        processing_duration=job.processing_duration,
        time_processing_finished=job.time_processing_finished,
        target_model_size=job.target_model,
        used_model_size=job.used_model,
        used_device=job.used_device,
        progress=round(job.progress, 4),
        stage=progress_stage(job),
        audio_duration=round(job.audio_duration, 3),
        seconds_left=seconds_left(job, clock),
        error=job.error if job.is_final else None,
        expires_at=_wall_clock(job.expires_at, clock) if job.is_final else None,
    )


class ProgressEvent(msgspec.Struct, kw_only=True):
    """The data of one server-sent progress event."""

    task_id: str
    status: str
    position_in_queue: int | None
    progress: float
    error: str | None = None
    # Where the job is, so a page can say something true before the first fraction arrives:
    # queued, decoding (the worker turns the upload into samples), loading_model, first_window
    # (the model runs, nothing decoded yet), transcribing (fractions arrive), finished, failed.
    stage: str = "queued"
    # Seconds of audio in the upload, and lines decoded so far.
    audio_duration: float = 0.0
    segments_done: int = 0
    # About how many seconds the rest will take, else null: long audio from the model's pace
    # (measured on earlier batches, of this file or the ones before), else once a share is done.
    seconds_left: float | None = None


class TaskDeleted(msgspec.Struct):
    """Answer to a deletion."""

    task_id: str
    deleted: bool = True


class DecoderStatus(msgspec.Struct, kw_only=True):
    """The model and queue state: loaded and target models, device, queue fill, workers."""

    is_model_loaded: bool
    loaded_models: list[str]
    loading_model: str | None
    last_loaded_model_size: str | None
    target_model_size: str
    max_model_to_use: str | None
    device: str
    compute_type: str
    worker_running: bool
    tasks_in_queue: int
    tasks_running: int
    max_task_queue_size: int
    # QUEUE_BACKEND=redis: the cluster's workers (device, models, batch size, running jobs).
    workers: list[FleetWorkerView] = msgspec.field(default_factory=list)
    # /v1/realtime here: `on` (this server's own live model), `off` (MAX_LIVE_SESSIONS=0) or
    # `refused` (an API node with API_NODE_LIVE=refuse).
    live_transcription: str = "on"


class FleetWorkerView(msgspec.Struct, kw_only=True):
    """One worker of a cluster as it registered itself."""

    name: str
    device: str
    models: list[str]
    batch_size: int
    running_jobs: int


class VersionInfo(msgspec.Struct):
    """The server's version."""

    version: str


class UserInfo(msgspec.Struct, kw_only=True):
    """Who the reverse proxy says the caller is (oauth2-proxy headers)."""

    email: str | None
    user: str | None
    may_read_logs: bool


class ModelChoice(msgspec.Struct, kw_only=True):
    """One model name the upload routes' `model` field accepts."""

    name: str
    # On this machine already (on an API node: on a live worker of its fleet); any other is
    # fetched (ALLOW_DOWNLOAD) or replaced by the nearest model that is.
    on_this_machine: bool
    # English-only models can neither translate nor detect the language.
    english_only: bool


class ModelList(msgspec.Struct, kw_only=True):
    """The names `model` accepts on the task API and /asr (besides `default`), smallest first."""

    models: list[ModelChoice]
    server_choice: str


class PrivacyInfo(msgspec.Struct, kw_only=True):
    """Privacy-relevant settings, for the UI's notice."""

    log_privacy_mode: bool
    delete_results_after_m: float
    refresh_expiration_time_on_usage: bool
    audio_stored_on_disk: bool = False
    # With API keys a task is visible only to the key that created it; without, to
    # anybody who has its id.
    tasks_bound_to_api_key: bool = False
    # Whether uploads and results need `Authorization: Bearer <key>`, so a page can say so
    # before the first upload fails (this route itself answers without a key).
    api_key_required: bool = False


class ErrorBody(msgspec.Struct):
    """Litestar's error shape, documented for the OpenAPI schema."""

    status_code: int
    detail: str


_ERROR_DESCRIPTIONS = {
    400: "Bad input: an empty, undecodable or audio-less upload, an unknown language or "
    "format, a malformed request, or a job no allowed model can do",
    401: "An API key is required (API_KEYS) and was missing or wrong; for /api/v1/logs: "
    "not an authorized e-mail from a trusted proxy, nor a local caller",
    404: "No such task: an unknown id, an expired result, or another API key's task",
    409: "The task has not finished (or it failed): there is no result yet",
    413: "The upload is larger than MAX_UPLOAD_MB, or its audio longer than MAX_AUDIO_DURATION_S",
    429: "The queue is full, or this client is over RATE_LIMIT; Retry-After says when to retry",
    500: "The transcription failed (the reason is in the message)",
    503: "The server is shutting down; Retry-After says when to retry",
}
# Every route that is not public may answer these, depending on the settings.
GUARDED = (401, 429)


def error_responses(
    *codes: int, guarded: bool = True, shape: type[msgspec.Struct] = ErrorBody
) -> dict[int, ResponseSpec]:
    """OpenAPI documentation of a route's error answers, in its surface's error `shape`."""
    wanted = sorted({*codes, *(GUARDED if guarded else ())})
    return {
        code: ResponseSpec(
            data_container=shape,
            description=_ERROR_DESCRIPTIONS[code],
            generate_examples=False,
        )
        for code in wanted
    }
