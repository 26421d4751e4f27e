"""The task API with a fake transcriber: routes, field names, errors, limits and expiry."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.api.results import content_disposition
from tests.asgi_helpers import (
    eventually,
    local_store,
    serve,
    service_of,
    upload,
    wait_final,
    wait_processing,
)
from tests.conftest import AppFactory, FakeTranscriber, wav_bytes
from tests.transcription.rig import FakeClock

SEED_FIELDS = {
    "task_id",
    "task_type",
    "status",
    "time_uploaded",
    "transcript",
    "source_language",
    "position_in_queue",
    "processing_duration",
    "time_processing_finished",
    "target_model_size",
    "used_model_size",
    "used_device",
}


async def test_transcribe_returns_seed_fields_and_finishes(
    client: AsyncTestClient[Litestar],
) -> None:
    """An upload answers at once with the seed's fields and reaches `finished` with text."""
    response = await upload(client)
    assert response.status_code == 200
    body = response.json()
    assert body.keys() >= SEED_FIELDS
    assert body["task_type"] == "transcribe"
    assert body["status"] in ("pending", "processing")
    final = await wait_final(client, body["task_id"])
    assert final["status"] == "finished"
    assert final["transcript"] == "hello world"
    assert final["position_in_queue"] is None
    assert final["used_model_size"] == "base"
    assert final["used_device"] == "cpu"
    assert final["progress"] == 1.0
    assert final["audio_duration"] == pytest.approx(1.0, abs=0.01)
    assert final["processing_duration"] >= 0


async def test_translate_sets_task_type(
    client: AsyncTestClient[Litestar], fake_transcriber: FakeTranscriber
) -> None:
    """/translate queues a translation and hands task=translate to the engine."""
    response = await upload(client, route="/api/v1/translate", params={"language": "de"})
    assert response.status_code == 200
    final = await wait_final(client, response.json()["task_id"])
    assert final["task_type"] == "translate"
    assert fake_transcriber.calls[-1].task == "translate"
    assert fake_transcriber.calls[-1].language == "de"


@pytest.mark.parametrize("where", ["query", "form"])
async def test_language_from_query_or_form(
    client: AsyncTestClient[Litestar], fake_transcriber: FakeTranscriber, where: str
) -> None:
    """`language` is read from the query string or from a form field."""
    kwargs: dict[str, Any] = (
        {"params": {"language": "fr"}} if where == "query" else {"fields": {"language": "fr"}}
    )
    response = await upload(client, **kwargs)
    await wait_final(client, response.json()["task_id"])
    assert fake_transcriber.calls[-1].language == "fr"


async def test_unknown_language_is_400_listing_codes(client: AsyncTestClient[Litestar]) -> None:
    """language=xx is refused with 400 and the list of valid codes."""
    response = await upload(client, params={"language": "xx"})
    assert response.status_code == 400
    assert "'xx'" in response.json()["detail"]
    assert "de" in response.json()["detail"] and "en" in response.json()["detail"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "empty"),
        (b"this is just a text file\nwith two lines\n", "not audio"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt garbage", "decode"),
    ],
)
async def test_bad_uploads_are_400_and_the_next_job_runs(
    client: AsyncTestClient[Litestar], data: bytes, expected: str
) -> None:
    """Empty, text and broken uploads get a 400 that says which; a good job still finishes."""
    response = await upload(client, data, name="notes.txt")
    assert response.status_code == 400
    assert expected in response.json()["detail"]
    good = await upload(client)
    assert (await wait_final(client, good.json()["task_id"]))["status"] == "finished"


async def test_missing_file_field_is_400(client: AsyncTestClient[Litestar]) -> None:
    """A multipart body without a file says where the file belongs."""
    response = await client.post("/api/v1/transcribe", data={"language": "en"}, files={})
    assert response.status_code == 400


async def test_not_multipart_is_400(client: AsyncTestClient[Litestar]) -> None:
    """A raw body is refused with a hint to use multipart/form-data."""
    response = await client.post("/api/v1/transcribe", content=wav_bytes())
    assert response.status_code == 400
    assert "multipart/form-data" in response.json()["detail"]


async def test_upload_over_limit_is_413(build_app: AppFactory) -> None:
    """A body larger than MAX_UPLOAD_MB is refused with 413."""
    async with AsyncTestClient(app=build_app(max_upload_mb=1)) as client:
        response = await upload(client, b"\0" * (1024 * 1024 + 10))
    assert response.status_code == 413
    assert "1 MB" in response.json()["detail"]


async def test_unknown_and_expired_ids_are_404(build_app: AppFactory) -> None:
    """An unknown id and an expired result answer the same 404."""
    clock = FakeClock()
    async with AsyncTestClient(
        app=build_app(clock=clock, delete_results_after_m=1, run_result_expiry_check_m=0)
    ) as client:
        unknown = await client.get("/api/v1/status", params={"task_id": "nope"})
        task_id = (await upload(client)).json()["task_id"]
        await wait_final(client, task_id)
        clock.advance(61)
        expired = await client.get("/api/v1/status", params={"task_id": task_id})
    assert unknown.status_code == expired.status_code == 404
    assert unknown.json() == expired.json()


async def test_reading_refreshes_expiry(build_app: AppFactory) -> None:
    """With refresh on, polling keeps a result alive past its original lifetime."""
    clock = FakeClock()
    async with AsyncTestClient(
        app=build_app(clock=clock, delete_results_after_m=1, run_result_expiry_check_m=0)
    ) as client:
        task_id = (await upload(client)).json()["task_id"]
        await wait_final(client, task_id)
        for _ in range(6):  # 3 minutes of polling, three times the 1-minute lifetime
            clock.advance(30)
            alive = await client.get("/api/v1/status", params={"task_id": task_id})
            assert alive.status_code == 200
        clock.advance(61)
        gone = await client.get("/api/v1/status", params={"task_id": task_id})
        assert gone.status_code == 404


async def test_sweeper_removes_unread_results(build_app: AppFactory) -> None:
    """The periodic sweep drops an expired result without anybody asking for it."""
    clock = FakeClock(autoadvance=False)
    app = build_app(clock=clock, delete_results_after_m=1, run_result_expiry_check_m=5)
    service = service_of(app)
    async with serve(app) as client:
        response = await client.post(
            "/api/v1/transcribe", files={"file": ("a.wav", wav_bytes(), "audio/wav")}
        )
        task_id = response.json()["task_id"]
        job = local_store(service).get(task_id, owner=None)
        assert job is not None
        await service.wait_until_final(job)
        clock.advance(120)  # expired, but nobody reads it and the sweep is not due
        await asyncio.sleep(0)
        assert len(local_store(service)) == 1
        clock.advance(180)  # the sweep is due (every 5 minutes)
        await eventually(lambda: len(local_store(service)) == 0)


async def test_queue_full_is_429_with_retry_after(
    build_app: AppFactory, fake_transcriber: FakeTranscriber
) -> None:
    """With MAX_TASK_QUEUE_SIZE=2, extra uploads get 429 at once and accepted ones finish."""
    gate = threading.Event()
    fake_transcriber.gate = gate
    # One client fills the whole queue here: its own share is not the bound under test.
    app = build_app(
        max_task_queue_size=2, max_queued_per_client=2, max_uploads_in_flight_per_client=16
    )
    async with AsyncTestClient(app=app) as client:
        first = await upload(client)
        await wait_processing(client, first.json()["task_id"])  # running frees its queue slot
        responses = await asyncio.gather(*(upload(client) for _ in range(5)))
        codes = sorted(r.status_code for r in responses)
        assert codes == [200, 200, 429, 429, 429]
        refused = next(r for r in responses if r.status_code == 429)
        assert int(refused.headers["retry-after"]) >= 1
        assert "queue is full" in refused.json()["detail"]
        gate.set()
        accepted = [first] + [r for r in responses if r.status_code == 200]
        for response in accepted:
            final = await wait_final(client, response.json()["task_id"])
            assert final["status"] == "finished"


async def test_position_in_queue_is_live(
    build_app: AppFactory, fake_transcriber: FakeTranscriber
) -> None:
    """Position is 0 for the running job and counts down for waiting ones."""
    gate = threading.Event()
    fake_transcriber.gate = gate
    async with AsyncTestClient(app=build_app()) as client:
        ids = [(await upload(client)).json()["task_id"] for _ in range(3)]
        await wait_processing(client, ids[0])
        positions = [
            (await client.get(f"/api/v1/tasks/{task_id}")).json()["position_in_queue"]
            for task_id in ids
        ]
        assert positions == [0, 1, 2]
        gate.set()
        for task_id in ids:
            await wait_final(client, task_id)


async def test_failing_job_reports_reason_and_worker_continues(
    build_app: AppFactory, fake_transcriber: FakeTranscriber
) -> None:
    """An engine error fails that job with a reason; the next job finishes."""
    fake_transcriber.fail_with = RuntimeError("boom")
    async with AsyncTestClient(app=build_app()) as client:
        failed = await wait_final(client, (await upload(client)).json()["task_id"])
        fake_transcriber.fail_with = None
        ok = await wait_final(client, (await upload(client)).json()["task_id"])
    assert failed["status"] == "failed"
    assert "RuntimeError" in failed["error"]
    assert ok["status"] == "finished"


async def test_delete_cancels_running_job_and_erases(
    build_app: AppFactory, fake_transcriber: FakeTranscriber
) -> None:
    """DELETE stops a running job, and the id answers 404 right after."""
    fake_transcriber.gate = threading.Event()
    async with AsyncTestClient(app=build_app()) as client:
        task_id = (await upload(client)).json()["task_id"]
        await wait_processing(client, task_id)
        deleted = await client.delete(f"/api/v1/tasks/{task_id}")
        assert deleted.status_code == 200
        assert deleted.json() == {"task_id": task_id, "deleted": True}
        assert (await client.get(f"/api/v1/tasks/{task_id}")).status_code == 404
        assert (await client.delete(f"/api/v1/tasks/{task_id}")).status_code == 404
        fake_transcriber.gate = None
        ok = await wait_final(client, (await upload(client)).json()["task_id"])
    assert ok["status"] == "finished"


async def test_result_formats_and_conflict_while_pending(
    build_app: AppFactory, fake_transcriber: FakeTranscriber
) -> None:
    """Results come in every format with its media type; 409 before the task finishes."""
    gate = threading.Event()
    fake_transcriber.gate = gate
    async with AsyncTestClient(app=build_app()) as client:
        task_id = (await upload(client, name="Résumé 1.wav")).json()["task_id"]
        early = await client.get(f"/api/v1/tasks/{task_id}/result", params={"format": "srt"})
        early_seed = await client.get("/api/v1/srt", params={"task_id": task_id})
        assert early.status_code == early_seed.status_code == 409
        gate.set()
        await wait_final(client, task_id)
        media = {}
        for fmt in ("txt", "srt", "vtt", "tsv", "json"):
            response = await client.get(f"/api/v1/tasks/{task_id}/result", params={"format": fmt})
            assert response.status_code == 200
            media[fmt] = response.headers["content-type"]
            assert (
                "filename*=UTF-8''R%C3%A9sum%C3%A9%201." + fmt
                in (response.headers["content-disposition"])
            )
        bad = await client.get(f"/api/v1/tasks/{task_id}/result", params={"format": "doc"})
        srt = await client.get("/api/v1/srt", params={"task_id": task_id})
    assert media["srt"].startswith("application/x-subrip")
    assert media["vtt"].startswith("text/vtt")
    assert media["json"].startswith("application/json")
    assert bad.status_code == 400
    assert srt.text.startswith("1\n00:00:00,000 --> 00:00:01,000\nhello world")


async def test_events_stream_progress_until_final(client: AsyncTestClient[Litestar]) -> None:
    """The SSE stream reports states with progress and ends with the final state."""
    task_id = (await upload(client)).json()["task_id"]
    events: list[dict[str, Any]] = []
    async with client.stream("GET", f"/api/v1/tasks/{task_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(msgspec.json.decode(line[6:]))
    assert events[-1]["status"] == "finished"
    assert events[-1]["progress"] == 1.0
    assert [e["progress"] for e in events] == sorted(e["progress"] for e in events)


def test_content_disposition_is_safe() -> None:
    """File names lose paths, quotes and control characters; non-ASCII goes in filename*."""
    header = content_disposition('../../etc/pa"ss\r\nwd.wav', "srt")
    assert "\r" not in header and "\n" not in header
    assert 'filename="pa_sswd.srt"' in header
    assert content_disposition(None, "txt").startswith('attachment; filename="transcript.txt"')
    assert "filename*=UTF-8''%E6%97%A5%E6%9C%AC.vtt" in content_disposition("日本.mp3", "vtt")


async def test_events_keepalive_is_a_bare_comment(
    build_app: AppFactory, fake_transcriber: FakeTranscriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While nothing changes the stream sends `: keepalive` comments, never empty data."""
    import app.api.tasks

    monkeypatch.setattr(app.api.tasks, "SSE_KEEPALIVE_S", 0.05)
    gate = threading.Event()
    fake_transcriber.gate = gate
    lines: list[str] = []
    app = build_app()
    sent: list[bytes] = []

    async def watched(scope: Any, receive: Any, send: Any) -> None:
        """The app, releasing the job once it has sent two keepalive comments: the test
        transport delivers the body only when the stream ends."""

        async def send_and_watch(message: Any) -> None:
            if message["type"] == "http.response.body":
                sent.append(message.get("body", b""))
                if b"".join(sent).count(b": keepalive") >= 2:
                    gate.set()
            await send(message)

        await app(scope, receive, send_and_watch)

    deadline = threading.Timer(10, gate.set)  # without keepalives: the stream ends, test fails
    deadline.start()
    try:
        async with AsyncTestClient(app=watched) as client:  # type: ignore[arg-type]
            task_id = (await upload(client)).json()["task_id"]
            async with client.stream("GET", f"/api/v1/tasks/{task_id}/events") as response:
                lines = [line async for line in response.aiter_lines()]
    finally:
        deadline.cancel()
    assert lines.count(": keepalive") >= 2
    assert "data: " not in lines
    assert any(line.startswith("event: finished") for line in lines)
