"""Domain errors and the one table that gives each its HTTP status, code and metrics reason.

Framework-free: the service and the transcription core raise these; each surface
only renders `describe(exc)` in its own shape (task API, OpenAI, /asr, the live
WebSocket's refusal), and the rejection is counted once, by that reason, where it
is rendered.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.backends.base import (
    JOB_LOST_REASON,
    BackendUnavailableError,
    ClientQueueFullError,
    QueueFullError,
)
from app.observability.metrics import RejectReason
from app.service.uploads import (
    TooManyClientUploadsError,
    TooManyUploadsError,
    UploadIdleError,
    UploadTimeoutError,
    UploadTooSlowError,
)
from app.transcription.audio import AudioDecodeError, AudioTooLongError
from app.transcription.models import NoModelAllowedError

__all__ = [
    "ClientGoneError",
    "ErrorKind",
    "ErrorView",
    "InvalidInputError",
    "JobFailedError",
    "JobLostError",
    "LiveDisabledError",
    "NoLiveSlotError",
    "OriginNotAllowedError",
    "RateLimitedError",
    "RejectReason",
    "ShuttingDownError",
    "TaskNotFoundError",
    "TaskNotReadyError",
    "UnauthorizedError",
    "UploadTooLargeError",
    "describe",
    "job_failure",
]


class InvalidInputError(ValueError):
    """A parameter has a value the service cannot use; `param` names it."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class UploadTooLargeError(Exception):
    """The request body is larger than MAX_UPLOAD_MB."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            f"the upload is larger than this server's limit of {max_bytes // (1024 * 1024)} MB"
        )


class ShuttingDownError(Exception):
    """The server is shutting down and takes no new jobs; `retry_after_s` says when to retry."""

    def __init__(self, message: str = "the server is shutting down", retry_after_s: int = 1):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UnauthorizedError(Exception):
    """No API key, or one this server does not know."""

    def __init__(self, *, key_given: bool) -> None:
        super().__init__(
            "the API key is not valid"
            if key_given
            else "this server requires an API key: send it as 'Authorization: Bearer <key>'"
        )


class OriginNotAllowedError(Exception):
    """A browser page of another site opened a live session (Origin not allowed)."""

    def __init__(self) -> None:
        super().__init__(
            "this page's origin may not open live sessions here (see CORS_ALLOW_ORIGINS)"
        )


class RateLimitedError(Exception):
    """The client has used up its RATE_LIMIT budget; `retry_after_s` says when it refills."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("too many requests from this address")
        self.retry_after_s = retry_after_s


class LiveDisabledError(Exception):
    """Live transcription is off on this server (MAX_LIVE_SESSIONS=0, or an API node that
    refuses it: API_NODE_LIVE=refuse)."""

    def __init__(self, message: str = "live transcription is off on this server") -> None:
        super().__init__(message)


class NoLiveSlotError(Exception):
    """Every live session slot (MAX_LIVE_SESSIONS) is taken; `retry_after_s` says when to retry."""

    def __init__(self, max_sessions: int, retry_after_s: int) -> None:
        super().__init__(
            f"this server runs at most {max_sessions} live session(s); try again later"
        )
        self.retry_after_s = retry_after_s


class TaskNotFoundError(Exception):
    """No such task for this caller: unknown id, expired, or another key's task."""

    def __init__(self) -> None:
        super().__init__("no such task (unknown id, or its result has expired)")


class TaskNotReadyError(Exception):
    """The task has no result (yet): it is still running, or it failed."""


class JobFailedError(Exception):
    """A job a synchronous route waited for failed; the message says why."""


class JobLostError(JobFailedError):
    """The shared backend lost the job (Redis restarted empty or failed over): 503, send again."""


def job_failure(error: str | None) -> JobFailedError:
    """The error a synchronous route raises for a failed job: 503 when the backend lost it."""
    if error == JOB_LOST_REASON:
        return JobLostError(error)
    return JobFailedError(error or "transcription failed")


class ClientGoneError(Exception):
    """The client closed the connection while its job waited or ran; the job is cancelled."""

    def __init__(self) -> None:
        super().__init__("the client disconnected before the result was ready")


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """How one kind of error is answered: status, OpenAI-style code, rejection reason."""

    status: int
    code: str
    reason: RejectReason | None = None
    param: str | None = None


# The one table. Looked up along each exception's class hierarchy, most specific first.
ERROR_KINDS: dict[type[Exception], ErrorKind] = {
    InvalidInputError: ErrorKind(400, "invalid_request", "bad_request"),
    AudioTooLongError: ErrorKind(413, "audio_too_long", "too_long", "file"),
    AudioDecodeError: ErrorKind(400, "audio_decode_error", "bad_audio", "file"),
    UploadTooLargeError: ErrorKind(413, "file_too_large", "too_large", "file"),
    NoModelAllowedError: ErrorKind(400, "model_not_allowed", "no_model", "model"),
    QueueFullError: ErrorKind(429, "queue_full", "queue_full"),
    ShuttingDownError: ErrorKind(503, "shutting_down", "shutting_down"),
    BackendUnavailableError: ErrorKind(503, "backend_unavailable", "backend_unavailable"),
    TooManyUploadsError: ErrorKind(429, "too_many_uploads", "too_many_uploads"),
    UploadTimeoutError: ErrorKind(408, "upload_timeout", "upload_timeout", "file"),
    # One client's share: each refusal names the bound it met (docs/SECURITY.md).
    ClientQueueFullError: ErrorKind(429, "client_queue_full", "client_queue_full"),
    TooManyClientUploadsError: ErrorKind(
        429, "too_many_client_uploads", "client_uploads_in_flight"
    ),
    UploadIdleError: ErrorKind(408, "upload_idle_timeout", "upload_idle", "file"),
    UploadTooSlowError: ErrorKind(408, "upload_too_slow", "upload_too_slow", "file"),
    UnauthorizedError: ErrorKind(401, "invalid_api_key", "unauthorized"),
    RateLimitedError: ErrorKind(429, "rate_limit_exceeded", "rate_limited"),
    LiveDisabledError: ErrorKind(403, "live_disabled", "live_disabled"),
    OriginNotAllowedError: ErrorKind(403, "origin_not_allowed", "origin_not_allowed"),
    NoLiveSlotError: ErrorKind(429, "too_many_sessions", "too_many_sessions"),
    TaskNotFoundError: ErrorKind(404, "not_found"),
    TaskNotReadyError: ErrorKind(409, "task_not_finished"),
    JobLostError: ErrorKind(503, "job_lost", "backend_unavailable"),
    JobFailedError: ErrorKind(500, "job_failed"),
    ClientGoneError: ErrorKind(499, "client_closed_request"),
}


@dataclass(frozen=True, slots=True)
class ErrorView:
    """Everything a surface needs to render one error in its own shape."""

    status: int
    code: str
    message: str
    param: str | None = None
    reason: RejectReason | None = None
    headers: dict[str, str] | None = None


def kind_of(exc: BaseException) -> ErrorKind | None:
    """The table's entry for `exc`, or None for errors the table does not know."""
    for cls in type(exc).__mro__:
        kind = ERROR_KINDS.get(cls)
        if kind is not None:
            return kind
    return None


def describe(exc: BaseException) -> ErrorView | None:
    """The view of a domain error (None when `exc` is not one).

    A specific `code` or `param` on the exception (each kind of undecodable audio,
    the field a bad parameter came from) wins over the table's.
    """
    kind = kind_of(exc)
    if kind is None:
        return None
    retry_after_s: int | None = getattr(exc, "retry_after_s", None)
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
    if isinstance(exc, UnauthorizedError):
        headers = {**(headers or {}), "WWW-Authenticate": 'Bearer realm="whisper-api"'}
    if isinstance(exc, UploadTimeoutError | ShuttingDownError):
        # The body may still be arriving: end the connection rather than read the rest.
        headers = {**(headers or {}), "Connection": "close"}
    return ErrorView(
        status=kind.status,
        code=getattr(exc, "code", None) or kind.code,
        message=getattr(exc, "message", None) or str(exc) or kind.code,
        param=getattr(exc, "param", None) or kind.param,
        reason=kind.reason,
        headers=headers,
    )
