"""Operations and people routes: health, readiness, docs, version, user info, login, logs."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app import __version__
from app.api.system import safe_redirect_target
from tests.conftest import AppFactory, client_from


async def test_healthz_answers(client: AsyncTestClient[Litestar]) -> None:
    """/healthz is 200 while the process runs."""
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_503_when_no_model_exists(build_app: AppFactory) -> None:
    """/readyz says 503 with the reason when no model can be had."""
    from app.asgi import create_app
    from app.composition import build_service
    from tests.conftest import FakeTranscriber, fake_manager, make_settings

    settings = make_settings()
    manager = fake_manager(settings, FakeTranscriber(), available=set())
    app = create_app(settings, service=build_service(settings, manager))
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert "no model" in response.json()["reason"]


async def test_readyz_is_200_with_a_model(client: AsyncTestClient[Litestar]) -> None:
    """/readyz is 200 when the worker runs and a model is available."""
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["ready"] is True


async def test_version(client: AsyncTestClient[Litestar]) -> None:
    """/api/v1/version reports the package version."""
    assert (await client.get("/api/v1/version")).json() == {"version": __version__}


async def test_decoder_status_reports_model_choice(client: AsyncTestClient[Litestar]) -> None:
    """decoder_status names the target model, device and queue limits."""
    body = (await client.get("/api/v1/decoder_status")).json()
    assert body["target_model_size"] == "medium"
    assert body["device"] == "cpu"
    assert body["compute_type"] == "int8"
    assert body["max_task_queue_size"] == 128
    assert body["worker_running"] is True


async def test_privacy_reports_settings(build_app: AppFactory) -> None:
    """/api/v1/privacy reflects the result lifetime and privacy mode."""
    async with AsyncTestClient(app=build_app(delete_results_after_m=5.5)) as client:
        body = (await client.get("/api/v1/privacy")).json()
    assert body == {
        "log_privacy_mode": True,
        "delete_results_after_m": 5.5,
        "refresh_expiration_time_on_usage": True,
        "audio_stored_on_disk": False,
        "tasks_bound_to_api_key": False,
        "api_key_required": False,
    }


async def test_docs_and_schema_cover_every_route(client: AsyncTestClient[Litestar]) -> None:
    """Swagger UI is at /docs and the schema documents each task route with a multipart body."""
    ui = await client.get("/docs")
    assert ui.status_code == 200
    assert "swagger" in ui.text.lower()
    schema = (await client.get("/docs/openapi.json")).json()
    paths = schema["paths"]
    for route in (
        "/api/v1/transcribe",
        "/api/v1/translate",
        "/api/v1/status",
        "/api/v1/srt",
        "/api/v1/decoder_status",
        "/api/v1/tasks/{task_id}",
        "/api/v1/tasks/{task_id}/result",
        "/api/v1/tasks/{task_id}/events",
        "/api/v1/privacy",
        "/api/v1/version",
        "/api/v1/userinfo",
        "/api/v1/logs",
        "/api/v1/login",
        "/healthz",
        "/readyz",
    ):
        assert route in paths, route
    body = paths["/api/v1/transcribe"]["post"]["requestBody"]["content"]
    assert "file" in body["multipart/form-data"]["schema"]["properties"]
    ok = paths["/api/v1/status"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]


async def test_index_page_is_served(client: AsyncTestClient[Litestar]) -> None:
    """The UI's page is served at /."""
    response = await client.get("/")
    assert response.status_code == 200
    assert "<html" in response.text.lower()


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/", "/"),
        ("/tasks?id=1", "/tasks?id=1"),
        ("https://evil.example/", "/"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        (None, "/"),
        ("", "/"),
    ],
)
def test_login_redirect_targets(target: str | None, expected: str) -> None:
    """Only same-site relative paths are redirect targets."""
    assert safe_redirect_target(target) == expected


async def test_login_redirects_relative_only(client: AsyncTestClient[Litestar]) -> None:
    """/api/v1/login sends people back to a relative path, never to another site."""
    here = await client.get("/api/v1/login", params={"redirect": "/#done"}, follow_redirects=False)
    away = await client.get(
        "/api/v1/login", params={"redirect": "https://evil.example"}, follow_redirects=False
    )
    assert here.status_code == away.status_code == 303
    assert here.headers["location"] == "/#done"
    assert away.headers["location"] == "/"


async def test_userinfo_reflects_proxy_headers(build_app: AppFactory) -> None:
    """userinfo shows the e-mail a trusted proxy sets and whether it may read logs."""
    app = build_app(log_authorized_mails=("admin@example.org",), trusted_proxies=("10.0.0.0/8",))
    async with client_from(app, "10.1.2.3") as client:
        body = (
            await client.get(
                "/api/v1/userinfo", headers={"X-Email": "Admin@Example.org", "X-User": "admin"}
            )
        ).json()
    assert body == {"email": "admin@example.org", "user": "admin", "may_read_logs": True}


async def test_logs_zip_for_authorized_mail(build_app: AppFactory, tmp_path: Path) -> None:
    """An authorized X-Email gets the log files as a zip; others get 401."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    (log_dir / "whisper_api.log").write_text("event=job_finished\n")
    (log_dir / "whisper_api.log.2026-11-25_10").write_text("event=job_queued\n")
    (log_dir / "other.txt").write_text("not a log\n")
    app = build_app(
        log_dir=str(log_dir),
        log_file="whisper_api.log",
        log_authorized_mails=("a@b.org",),
        trusted_proxies=("10.0.0.1",),
    )
    async with client_from(app, "10.0.0.1") as client:
        # The proxy's peer is not loopback, so only the e-mail rule can let it in.
        allowed = await client.get("/api/v1/logs", headers={"X-Email": "a@b.org"})
        refused = await client.get("/api/v1/logs", headers={"X-Email": "x@b.org"})
    assert allowed.status_code == 200
    assert allowed.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(allowed.content)).namelist()
    assert sorted(names) == ["whisper_api.log", "whisper_api.log.2026-11-25_10"]
    assert refused.status_code == 401


async def test_readyz_node_scope_changes_nothing_for_a_standalone_server(
    build_app: AppFactory,
) -> None:
    """A server that runs its own worker is ready for `scope=node` exactly when it is ready."""
    from app.asgi import create_app
    from app.composition import build_service
    from tests.conftest import FakeTranscriber, fake_manager, make_settings

    settings = make_settings()
    manager = fake_manager(settings, FakeTranscriber(), available=set())
    app = create_app(settings, service=build_service(settings, manager))
    async with AsyncTestClient(app=app) as client:
        node = await client.get("/readyz", params={"scope": "node"})
        head = await client.head("/readyz", params={"scope": "node"})
        wrong = await client.get("/readyz", params={"scope": "everything"})
    assert node.status_code == head.status_code == 503
    assert "no model" in node.json()["reason"]
    assert wrong.status_code == 400


def test_readyz_node_scope_of_a_cluster_node_needs_redis_not_workers(tmp_path: Path) -> None:
    """No worker alive: /readyz 503, ?scope=node 200 and backend_up 1 until Redis dies."""
    from tests.backends.redis.cluster_rig import CLUSTER_ENV, redis_server
    from tests.server_process import start_server, wait_until

    with redis_server(tmp_path) as redis:
        node = start_server(tmp_path, **CLUSTER_ENV, REDIS_URL=redis.url)
        try:

            def node_ready() -> bool:
                try:
                    return httpx.get(node.url + "/readyz?scope=node").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(
                node_ready,
                timeout_s=60,
                message="the API node never became ready for scope=node",
            )
            whole = httpx.get(node.url + "/readyz", timeout=10)
            assert whole.status_code == 503
            assert "worker" in whole.json()["reason"]
            assert "whisper_api_backend_up 1.0" in httpx.get(node.url + "/metrics").text
            redis.process.kill()
            redis.process.wait(timeout=10)
            gone = httpx.get(node.url + "/readyz?scope=node", timeout=30)
            assert gone.status_code == 503
            # What the WhisperApiRedisUnreachable alert reads.
            assert "whisper_api_backend_up 0.0" in httpx.get(node.url + "/metrics", timeout=30).text
        finally:
            node.stop()


async def test_models_lists_the_names_uploads_accept(build_app: AppFactory) -> None:
    """/api/v1/models: every name within MAX_MODEL (what `model` accepts), none of OpenAI's."""
    async with AsyncTestClient(app=build_app(max_model="base")) as client:
        body = (await client.get("/api/v1/models")).json()
    names = [model["name"] for model in body["models"]]
    assert names == ["tiny.en", "tiny", "base.en", "base"]
    by_name = {model["name"]: model for model in body["models"]}
    assert by_name["tiny.en"]["english_only"] and not by_name["base"]["english_only"]
    # The fake machine holds tiny.en and base; the others would be fetched or replaced.
    assert by_name["base"]["on_this_machine"] and not by_name["tiny"]["on_this_machine"]
    assert body["server_choice"] == "base"
