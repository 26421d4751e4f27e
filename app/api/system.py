"""Operations and people routes: health, readiness, version, user info, login redirect, logs."""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, head
from litestar.exceptions import NotAuthorizedException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import QueryParameter
from litestar.response import Redirect
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from app import __version__
from app.api.dependencies import Service
from app.api.schemas import UserInfo, VersionInfo, error_responses
from app.api.security import is_local_client, peer_of
from app.observability.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

__all__ = ["SystemController", "safe_redirect_target"]


class Health(msgspec.Struct):
    """Liveness answer."""

    status: str


class Readiness(msgspec.Struct, kw_only=True):
    """Readiness answer with the reason when not ready."""

    ready: bool
    reason: str | None = None


def safe_redirect_target(target: str | None) -> str:
    """Only same-site relative paths: never another host, scheme or protocol-relative URL."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(ord(ch) < 0x20 for ch in target):
        return "/"
    return target


def _proxy_header(request: Request[Any, Any, Any], *names: str) -> str | None:
    """An identity header, believed only when the request came through a trusted proxy.

    Anybody can send X-Email; only a proxy listed in TRUSTED_PROXIES (which sets
    or strips it, as oauth2-proxy does) makes it mean something.
    """
    if not peer_of(request.scope).via_trusted_proxy:
        return None
    for name in names:
        value = request.headers.get(name)
        if value and value.strip():
            return value.strip()
    return None


def _claimed_email(request: Request[Any, Any, Any]) -> str | None:
    email = _proxy_header(request, "x-email", "x-forwarded-email")
    return email.lower() if email else None


def may_read_logs(request: Request[Any, Any, Any], service: Service) -> bool:
    """An authorized e-mail from a trusted proxy, or (LOG_ALLOW_LOCALHOST) a local client."""
    email = _claimed_email(request)
    if email is not None and email in service.settings.log_authorized_mails:
        return True
    return service.settings.log_allow_localhost and is_local_client(request.scope)


def _zip_logs(log_path: Path | None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        if log_path is not None and log_path.parent.is_dir():
            for path in sorted(log_path.parent.glob(log_path.name + "*")):
                if path.is_file():
                    archive.write(path, arcname=path.name)
    return buffer.getvalue()


ReadyScope = Literal["service", "node"]


async def not_ready_reason(service: Service, scope: ReadyScope = "service") -> str | None:
    """Why the server cannot serve jobs now, or None when it can.

    `node` asks only about this process: an API node of a cluster whose queue answers
    takes uploads even while no worker is alive (they wait until one is), which is what a
    Kubernetes readiness probe needs when the workers scale to zero.
    """
    state = service.status()
    if state.draining:
        return "the server is shutting down"
    if (unreachable := await service.backend.check()) is not None:
        return unreachable
    if scope == "node" and service.worker is None:
        return None
    if not state.worker_running:
        return "the worker is not running"
    if state.loading_model is not None:
        return f"loading model {state.loading_model}"
    if not state.loaded_models and not service.models.allowed_models():
        return "no model is available on this server"
    return None


ScopeParameter = Annotated[
    ReadyScope,
    QueryParameter(
        name="scope",
        description="`service` (default): jobs can be served now; `node`: this API node "
        "takes uploads (its queue answers, it is not draining), workers or not",
    ),
]


class SystemController(Controller):
    """Health, readiness, version, who-am-I, login redirect and log download."""

    tags = ["system"]

    @get("/healthz", summary="Liveness: the process answers")
    async def healthz(self) -> Health:
        """Always 200 while the event loop runs."""
        return Health(status="ok")

    @get(
        "/readyz",
        summary="Readiness: the worker runs and a model can serve",
        responses={
            503: ResponseSpec(
                data_container=Readiness,
                description="Not ready: loading a model, no model available, or no worker",
                generate_examples=False,
            )
        },
    )
    async def readyz(self, service: Service, of: ScopeParameter = "service") -> Response[Readiness]:
        """200 when jobs can be served now, 503 with the reason otherwise."""
        reason = await not_ready_reason(service, of)
        status = HTTP_200_OK if reason is None else HTTP_503_SERVICE_UNAVAILABLE
        return Response(Readiness(ready=reason is None, reason=reason), status_code=status)

    # Orchestrators and uptime checkers often send HEAD: the same status, no body.
    @head("/healthz", include_in_schema=False)
    async def healthz_head(self) -> None:
        """200 while the event loop runs."""

    @head("/readyz", include_in_schema=False)
    async def readyz_head(self, service: Service, of: ScopeParameter = "service") -> Response[None]:
        """200 when ready, 503 otherwise."""
        ready = await not_ready_reason(service, of) is None
        return Response(None, status_code=HTTP_200_OK if ready else HTTP_503_SERVICE_UNAVAILABLE)

    @get(
        "/metrics",
        summary="Prometheus metrics",
        media_type=METRICS_CONTENT_TYPE,
    )
    async def metrics(self, service: Service) -> Response[bytes]:
        """Queue, jobs, audio seconds, timings, models and refused uploads, in Prometheus text."""
        reachable = await service.backend.check() is None
        return Response(
            content=service.render_metrics(backend_reachable=reachable),
            media_type=METRICS_CONTENT_TYPE,
        )

    @get("/api/v1/version", summary="Server version", responses=error_responses())
    async def version(self) -> VersionInfo:
        """The running version of whisper-api."""
        return VersionInfo(version=__version__)

    @get(
        "/api/v1/userinfo",
        summary="Who the reverse proxy says you are",
        responses=error_responses(),
    )
    async def userinfo(self, request: Request[Any, Any, Any], service: Service) -> UserInfo:
        """The e-mail and user name set by an authenticating proxy, if any."""
        user = _proxy_header(request, "x-user", "x-forwarded-user")
        return UserInfo(
            email=_claimed_email(request),
            user=user,
            may_read_logs=may_read_logs(request, service),
        )

    @get("/api/v1/login", summary="Return to the app after the proxy's login")
    async def login(
        self,
        redirect: Annotated[
            str | None, QueryParameter(name="redirect", description="a relative path to return to")
        ] = None,
    ) -> Redirect:
        """Redirects to a relative path only, so it cannot be used to send people elsewhere."""
        return Redirect(path=safe_redirect_target(redirect), status_code=303)

    @get(
        "/api/v1/logs",
        summary="Download the log files as a zip",
        media_type="application/zip",
        responses=error_responses(401),
    )
    async def logs(self, request: Request[Any, Any, Any], service: Service) -> Response[bytes]:
        """For LOG_AUTHORIZED_MAILS (X-Email from a trusted proxy) and, if allowed, local callers.

        The logs hold no content; in privacy mode no identities either.
        """
        if not may_read_logs(request, service):
            raise NotAuthorizedException(detail="your account may not read the server logs")
        return Response(
            content=await asyncio.to_thread(_zip_logs, service.settings.log_path),
            media_type="application/zip",
            headers={"Content-Disposition": 'attachment; filename="whisper-api-logs.zip"'},
        )
