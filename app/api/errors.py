"""One exception handler for the whole app: classify, count once, render in the surface's shape.

Every error, whether a handler, a middleware (API keys, rate limit) or the router
raised it, ends here. Domain errors get their status, code and message from the
table in `app.service.errors`; Litestar's own HTTP errors keep theirs. A refused
upload is counted in /metrics under its reason, once, by `count_refusal`, which the
live WebSocket's refusals (answered before its upgrade, never here) go through too.
Each surface registers a renderer for its path prefix; everything else answers in
the task API's shape.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException

from app.observability.metrics import RejectReason
from app.service import TranscriptionService
from app.service.errors import ErrorView, describe

__all__ = ["ErrorRenderer", "count_refusal", "error_handler", "task_api_error"]

ErrorRenderer = Callable[[ErrorView], Response[Any]]

PATH_TOO_LONG = "no such page: a part of the path is longer than a file name can be"

# Litestar's own errors (a malformed request, the rate limit) by status.
_HTTP_REASONS: dict[int, RejectReason] = {
    400: "bad_request",
    413: "too_large",
    415: "bad_request",
    422: "bad_request",
    429: "rate_limited",
}
_HTTP_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    429: "rate_limited",
}


def task_api_error(view: ErrorView) -> Response[Any]:
    """The task API's (Litestar's) shape: `{"status_code", "detail"}`."""
    return Response(
        {"status_code": view.status, "detail": view.message},
        status_code=view.status,
        headers=view.headers,
        media_type="application/json",
    )


def count_refusal(service: TranscriptionService, view: ErrorView) -> None:
    """Count a refused upload or live session in /metrics under its reason (if it has one)."""
    if view.reason is not None:
        service.metrics.upload_rejected(view.reason)


def _name_too_long(exc: BaseException) -> bool:
    """Whether `exc` comes from a path the file system refused as too long (ENAMETOOLONG)."""
    cause = exc.__cause__ or exc.__context__
    return isinstance(cause, OSError) and cause.errno == errno.ENAMETOOLONG


def _view_of(exc: Exception) -> ErrorView:
    view = describe(exc)
    if view is not None:
        return view
    if isinstance(exc, HTTPException) and _name_too_long(exc):
        # The UI's static-file router asked the file system about an absurd path.
        return ErrorView(status=404, code="not_found", message=PATH_TOO_LONG)
    if isinstance(exc, HTTPException):
        return ErrorView(
            status=exc.status_code,
            code=_HTTP_CODES.get(exc.status_code, "http_error"),
            message=exc.detail,
            reason=_HTTP_REASONS.get(exc.status_code),
            headers=dict(exc.headers) if exc.headers else None,
        )
    # Nobody expected this one: Litestar's exception logging records it (request_failed).
    return ErrorView(status=500, code="server_error", message="internal server error")


def error_handler(
    service: TranscriptionService, renderers: dict[str, ErrorRenderer]
) -> Callable[[Request[Any, Any, Any], Exception], Response[Any]]:
    """The app's exception handler: `renderers` maps path prefixes to their surface's shape."""
    by_length = sorted(renderers.items(), key=lambda item: -len(item[0]))

    def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        view = _view_of(exc)
        if request.method == "POST":
            count_refusal(service, view)
        path = request.scope.get("path", "")
        for prefix, render in by_length:
            if path.startswith(prefix):
                return render(view)
        return task_api_error(view)

    return handle
