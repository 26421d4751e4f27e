"""Response headers (app.api.headers) and malformed requests answered with a 4xx that says why."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.api.headers import CONTENT_SECURITY_POLICY
from tests.conftest import AppFactory, wav_bytes

BOUNDARY = "hdr-boundary"


def _form(field_header: str, value: bytes = b"en") -> bytes:
    """A multipart body with one text part (its header as given) and a short WAV file."""
    return (
        f"--{BOUNDARY}\r\n{field_header}\r\n\r\n".encode()
        + value
        + f"\r\n--{BOUNDARY}\r\n".encode()
        + b'Content-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        + wav_bytes()
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


@pytest.fixture
def app(build_app: AppFactory) -> Litestar:
    """An app on the fake transcriber."""
    return build_app()


async def test_page_docs_and_api_carry_the_browser_protections(app: Litestar) -> None:
    """CSP (this origin only, frame-ancestors 'self'), nosniff, no-referrer on every answer."""
    async with AsyncTestClient(app=app) as client:
        for path in ("/", "/docs", "/docs/openapi.json", "/healthz", "/api/v1/version", "/nope"):
            response = await client.get(path)
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
            assert response.headers["x-content-type-options"] == "nosniff", path
            assert response.headers["referrer-policy"] == "no-referrer", path
    assert "frame-ancestors 'self'" in CONTENT_SECURITY_POLICY
    assert (
        "'unsafe-inline'" not in CONTENT_SECURITY_POLICY and "http" not in CONTENT_SECURITY_POLICY
    )


async def test_task_state_and_transcripts_are_never_stored_by_caches(app: Litestar) -> None:
    """Uploads, task state, results and OpenAI answers say no-store; the page may be cached."""
    async with AsyncTestClient(app=app) as client:
        files = {"file": ("a.wav", wav_bytes())}
        posted = await client.post("/api/v1/transcribe", files=files)
        task_id = posted.json()["task_id"]
        answers = [
            posted,
            await client.get(f"/api/v1/tasks/{task_id}"),
            await client.get("/api/v1/status", params={"task_id": task_id}),
            await client.post("/v1/audio/transcriptions", files=files, data={"model": "whisper-1"}),
            await client.get("/api/v1/tasks/unknown"),
        ]
        page = await client.get("/")
    for response in answers:
        assert response.headers["cache-control"] == "no-store", response.request.url
    assert page.headers.get("cache-control") != "no-store"


async def test_head_on_health_routes(app: Litestar) -> None:
    """HEAD /healthz is 200 and HEAD /readyz answers readiness, both without a body."""
    async with AsyncTestClient(app=app) as client:
        health = await client.head("/healthz")
        ready = await client.head("/readyz")
        ready_get = await client.get("/readyz")
    assert health.status_code == 200 and health.content == b""
    assert ready.status_code == ready_get.status_code and ready.content == b""


@pytest.mark.parametrize("charset", ["x-bogus", "hex", "idna", "rot13", "base64"])
async def test_a_field_in_an_unknown_or_binary_charset_is_a_400(
    app: Litestar, charset: str
) -> None:
    """A text part declaring a charset that is not a text encoding: 400 naming the field."""
    header = (
        'Content-Disposition: form-data; name="language"\r\n'
        f"Content-Type: text/plain; charset={charset}"
    )
    async with AsyncTestClient(app=app) as client:
        response = await client.post(
            "/api/v1/transcribe",
            content=_form(header),
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
    assert response.status_code == 400, response.text
    assert "charset" in response.json()["detail"] and "language" in response.json()["detail"]


async def test_a_latin_1_field_is_read(app: Litestar) -> None:
    """A known text charset is decoded as declared."""
    header = (
        'Content-Disposition: form-data; name="language"\r\n'
        "Content-Type: text/plain; charset=iso-8859-1"
    )
    async with AsyncTestClient(app=app) as client:
        response = await client.post(
            "/api/v1/transcribe",
            content=_form(header, b"en"),
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
    assert response.status_code == 200, response.text


async def test_a_huge_field_name_is_refused_as_a_too_long_header(app: Litestar) -> None:
    """A 100 KB field name is a 400 about the part's header, not "too many parts"."""
    header = f'Content-Disposition: form-data; name="{"n" * 100_000}"'
    async with AsyncTestClient(app=app) as client:
        response = await client.post(
            "/api/v1/transcribe",
            content=_form(header),
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
    assert response.status_code == 400
    assert "header is too long" in response.json()["detail"]


async def test_a_path_segment_longer_than_a_file_name_is_a_404(app: Litestar) -> None:
    """The static-file router's ENAMETOOLONG becomes 404 with a message, never a 500."""
    async with AsyncTestClient(app=app) as client:
        for path in ("/" + "a" * 300, "/" + "a" * 5000, "/js/" + "b" * 256):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert "no such page" in response.json()["detail"], path
