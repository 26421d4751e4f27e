"""The task API (/api/v1): upload audio, then poll, follow, fetch and delete its task."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
from litestar import Controller, Response, delete, get
from litestar.params import PathParameter, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from app.api.dependencies import Owner, Service
from app.api.forms import MAX_SHAPE_VALUE, WhisperForm
from app.api.intake import AnyRequest, Intake, receive_upload
from app.api.results import transcript_download
from app.api.schemas import (
    DecoderStatus,
    FleetWorkerView,
    ModelChoice,
    ModelList,
    PrivacyInfo,
    ProgressEvent,
    TaskDeleted,
    TaskResponse,
    error_responses,
    progress_stage,
    seconds_left,
    task_response,
)
from app.service import JobSpec, TranscriptionService
from app.service.errors import InvalidInputError, TaskNotFoundError, TaskNotReadyError
from app.service.live import live_mode
from app.transcription import formats
from app.transcription.jobs import Job, JobStatus
from app.transcription.types import TaskType

__all__ = ["TaskController"]

SSE_KEEPALIVE_S = 15.0
FINAL_STATUSES = frozenset({str(JobStatus.FINISHED), str(JobStatus.FAILED)})


class TaskUploadForm(WhisperForm, kw_only=True):
    """The task API's upload fields; each may also be given in the query string."""

    def to_spec(
        self, service: TranscriptionService, task_type: TaskType, owner: str | None
    ) -> JobSpec:
        """The job this upload asks for."""
        return self.spec(service, task_type=task_type, owner=owner, surface="tasks")


TASK_INTAKE = Intake(surface="tasks", form=TaskUploadForm, errors=error_responses(400, 413))

TaskIdQuery = Annotated[str, QueryParameter(name="task_id", description="the id of a task")]
TaskIdPath = Annotated[str, PathParameter(description="the id of a task")]


async def _finished_job(service: Service, task_id: TaskIdPath, owner: str | None) -> Job:
    job = await _known_job(service, task_id, owner)
    if job.status is JobStatus.FAILED:
        raise TaskNotReadyError(f"the task failed: {job.error or 'unknown'}")
    if job.status is not JobStatus.FINISHED or job.transcript is None:
        raise TaskNotReadyError(
            f"the task is {job.status}; the result is ready once it is finished"
        )
    return job


async def _known_job(service: Service, task_id: TaskIdPath, owner: str | None) -> Job:
    job = await service.get(task_id, owner=owner)
    if job is None:
        raise TaskNotFoundError
    return job


async def _submit(
    request: AnyRequest, service: Service, owner: str | None, task_type: TaskType
) -> TaskResponse:
    """Queue the upload of `request` as a job of `task_type`; the task as it stands now."""
    job, _ = await receive_upload(
        request, service, TASK_INTAKE, lambda form: form.to_spec(service, task_type, owner)
    )
    return await _view(service, job)


async def _view(service: Service, job: Job) -> TaskResponse:
    """The public view of `job`, with its live queue position."""
    return task_response(job, await service.position(job), service.clock)


ShapeQuery = Annotated[
    int | None,
    QueryParameter(
        ge=1, le=MAX_SHAPE_VALUE, description="subtitles: overrides the upload's setting"
    ),
]


class TaskController(Controller):
    """Upload, poll, stream progress, fetch and delete transcription tasks."""

    path = "/api/v1"
    tags = ["tasks"]

    @TASK_INTAKE.route("/transcribe", "Upload audio to transcribe")
    async def transcribe(self, request: AnyRequest, service: Service, owner: Owner) -> TaskResponse:
        """Queue a transcription; answers at once with the task (poll it or stream its events)."""
        return await _submit(request, service, owner, "transcribe")

    @TASK_INTAKE.route("/translate", "Upload audio to translate into English")
    async def translate(self, request: AnyRequest, service: Service, owner: Owner) -> TaskResponse:
        """Queue a translation into English; answers at once with the task."""
        return await _submit(request, service, owner, "translate")

    @get(
        "/status",
        summary="A task's state, by the task_id query parameter",
        responses=error_responses(400, 404),
    )
    async def status(self, service: Service, owner: Owner, task_id: TaskIdQuery) -> TaskResponse:
        """The task with its live queue position; 404 when unknown or expired."""
        return await _view(service, await _known_job(service, task_id, owner))

    @get(
        "/srt",
        summary="A finished task's SubRip subtitles, by the task_id query parameter",
        media_type="application/x-subrip",
        responses=error_responses(400, 404, 409),
    )
    async def srt(self, service: Service, owner: Owner, task_id: TaskIdQuery) -> Response[bytes]:
        """SubRip subtitles of a finished task; 409 while it is not finished."""
        return transcript_download(await _finished_job(service, task_id, owner), "srt")

    @get("/decoder_status", summary="Model and queue state", responses=error_responses())
    async def decoder_status(self, service: Service) -> DecoderStatus:
        """Which model is loaded (or loading), where it runs, and how full the queue is."""
        state = service.status()
        return DecoderStatus(
            is_model_loaded=bool(state.loaded_models),
            loaded_models=state.loaded_models,
            loading_model=state.loading_model,
            last_loaded_model_size=state.last_loaded_model,
            target_model_size=state.target_model,
            max_model_to_use=state.max_model,
            device=state.device,
            compute_type=state.compute_type,
            worker_running=state.worker_running,
            tasks_in_queue=state.waiting_jobs,
            tasks_running=state.running_jobs,
            max_task_queue_size=state.max_queue_size,
            workers=[
                FleetWorkerView(
                    name=worker.name,
                    device=worker.device,
                    models=list(worker.models),
                    batch_size=worker.batch_size,
                    running_jobs=worker.running_jobs,
                )
                for worker in state.workers
            ],
            live_transcription=live_mode(service.settings),
        )

    @get("/models", summary="The models an upload may ask for", responses=error_responses())
    async def models(self, service: Service) -> ModelList:
        """Every name the `model` field accepts within MAX_MODEL, and which are on this machine;
        on an API node only those its fleet's live workers offer now (all on a worker)."""
        if service.worker is None:
            names = service.runnable_models()
            offline = set(names)
        else:
            names = service.models.names_within_cap()
            offline = set(service.models.allowed_models())
        return ModelList(
            models=[
                ModelChoice(
                    name=name, on_this_machine=name in offline, english_only=name.endswith(".en")
                )
                for name in names
            ],
            server_choice=service.status().target_model,
        )

    @get("/tasks/{task_id:str}", summary="A task's state", responses=error_responses(404))
    async def get_task(self, service: Service, owner: Owner, task_id: TaskIdPath) -> TaskResponse:
        """The task with its live queue position; 404 when unknown or expired."""
        return await _view(service, await _known_job(service, task_id, owner))

    @delete(
        "/tasks/{task_id:str}",
        summary="Cancel a task and erase its result",
        status_code=200,
        responses=error_responses(404),
    )
    async def delete_task(self, service: Service, owner: Owner, task_id: TaskIdPath) -> TaskDeleted:
        """Cancels a queued or running task and forgets it at once."""
        if not await service.delete(task_id, owner=owner):
            raise TaskNotFoundError
        return TaskDeleted(task_id=task_id)

    @get(
        "/tasks/{task_id:str}/result",
        summary="A finished task's result in any format",
        responses=error_responses(400, 404, 409),
    )
    async def result(
        self,
        service: Service,
        owner: Owner,
        task_id: TaskIdPath,
        fmt: Annotated[
            str,
            QueryParameter(
                name="format", description="one of txt, srt, vtt, tsv, json, verbose_json"
            ),
        ] = "json",
        max_line_width: ShapeQuery = None,
        max_line_count: ShapeQuery = None,
        max_words_per_cue: ShapeQuery = None,
    ) -> Response[bytes]:
        """The transcript in any format; srt/vtt cues shaped as asked; 409 while not finished."""
        if fmt not in formats.FORMATS:
            raise InvalidInputError(
                f"unknown format {fmt!r}; use one of {', '.join(formats.FORMATS)}", param="format"
            )
        job = await _finished_job(service, task_id, owner)
        asked = {
            "max_line_width": max_line_width,
            "max_line_count": max_line_count,
            "max_words_per_cue": max_words_per_cue,
        }
        overrides = {name: value for name, value in asked.items() if value is not None}
        shape = msgspec.structs.replace(job.subtitle_shape, **overrides)
        return transcript_download(job, fmt, shape)

    @get(
        "/tasks/{task_id:str}/events",
        summary="Server-sent progress events",
        responses=error_responses(404),
    )
    async def events(self, service: Service, owner: Owner, task_id: TaskIdPath) -> ServerSentEvent:
        """Streams status changes, queue position and fraction of audio done, then the end."""
        job = await _known_job(service, task_id, owner)
        return ServerSentEvent(_progress_stream(service, job))

    @get("/privacy", summary="Privacy-relevant settings", responses=error_responses())
    async def privacy(self, service: Service) -> PrivacyInfo:
        """How long results live and whether logs are kept private; audio is never stored."""
        settings = service.settings
        return PrivacyInfo(
            log_privacy_mode=settings.log_privacy_mode,
            delete_results_after_m=settings.delete_results_after_m,
            refresh_expiration_time_on_usage=settings.refresh_expiration_time_on_usage,
            tasks_bound_to_api_key=bool(settings.api_keys),
            api_key_required=bool(settings.api_keys),
        )


async def _progress_stream(service: Service, job: Job) -> AsyncIterator[ServerSentEventMessage]:
    last: ProgressEvent | None = None
    changed = True
    while True:
        token = service.notifier.token(job)  # first: no change between read and wait is lost
        position = await service.position(job)
        # The rest is read without awaiting, so the event is one consistent snapshot.
        event = ProgressEvent(
            task_id=job.id,
            status=str(job.status),
            position_in_queue=position,
            progress=round(job.progress, 4),
            error=job.error if job.is_final else None,
            stage=progress_stage(job),
            audio_duration=round(job.audio_duration, 3),
            segments_done=len(job.partial_segments),
            seconds_left=seconds_left(job, service.clock),
        )
        if event != last:
            yield ServerSentEventMessage(
                event=event.status, data=msgspec.json.encode(event).decode()
            )
            last = event
        elif not changed:
            # Nothing happened for a while: a comment keeps proxies from closing the stream.
            yield ServerSentEventMessage(comment="keepalive", data=None)
        if event.status in FINAL_STATUSES:
            return  # the final event was sent; a job that ended after the snapshot set `token`
        changed = await service.notifier.wait(token, max_wait_s=SSE_KEEPALIVE_S)
