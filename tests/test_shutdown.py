"""SIGTERM on the real `whisper-api` process while it transcribes: drain, finish, exit 0."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from app.bench.runner import word_error_rate
from tests.attack_clients import SlowUpload
from tests.conftest import reference_text, shared_clip
from tests.server_process import (
    iter_sse,
    server_decoder_status,
    server_submit,
    server_task,
    server_upload,
    server_wait_final,
    server_wait_status,
    start_server,
    wait_until,
)

pytestmark = pytest.mark.real_model

GRACE_S = 120  # far more than the 120 s clip needs on two CPU cores with `base`
LONG_CLIP = "en_longform_tedlium_120s.flac"
TRANSCRIBE = "/api/v1/transcribe"


def test_sigterm_drains_finishes_the_running_job_and_exits_0(tmp_path: Path) -> None:
    """SIGTERM mid-job: /readyz 503, uploads 503 + Retry-After, waiting job fails, the
    running job finishes and can be read, and the process exits 0 within the grace."""
    server = start_server(tmp_path, SHUTDOWN_GRACE_S=str(GRACE_S))
    try:
        server.wait_ready()
        running = server_submit(server.url, shared_clip(LONG_CLIP), TRANSCRIBE)
        waiting = server_submit(server.url, shared_clip("en_jfk.flac"), TRANSCRIBE)
        server_wait_status(server.url, running, "processing", timeout_s=60)

        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        ready = httpx.get(server.url + "/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["reason"] == "the server is shutting down"
        refused = server_upload(server.url, TRANSCRIBE, shared_clip("en_jfk.flac"))
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) >= 1
        # Uploads are refused from the signal on; the queue is drained at the server's
        # next tick (uvicorn's 0.1 s loop), so the waiting job fails a moment later.
        lost = server_wait_status(server.url, waiting, "failed", timeout_s=5)
        assert "upload it again" in str(lost["error"])
        assert server_task(server.url, running)["status"] == "processing"

        final = server_wait_final(
            server.url, running, timeout_s=GRACE_S - (time.monotonic() - signalled)
        )
        assert final["status"] == "finished"
        assert word_error_rate(reference_text(LONG_CLIP), str(final["transcript"])) <= 0.25

        assert server.process.wait(timeout=GRACE_S) == 0
        assert time.monotonic() - signalled < GRACE_S
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=20)
    events = {record["event"]: record for record in server.log_records()}
    assert events["shutdown_draining"]["queued_jobs_failed"] == 1
    assert events["shutdown_running_jobs_ended"]["finished"] == 1


class EventStreamReader(threading.Thread):
    """Follows a task's event stream until it ends; keeps the events it saw."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.events: list[tuple[str, str]] = []
        self.ended_cleanly = False

    def run(self) -> None:
        with contextlib.suppress(httpx.HTTPError):
            for event in iter_sse(self.url):
                self.events.append(event)
            self.ended_cleanly = True


def test_sigterm_past_the_grace_answers_every_client_before_closing(tmp_path: Path) -> None:
    """Row 5: past the grace, every client of the running job hears `failed` before exit."""
    server = start_server(tmp_path, SHUTDOWN_GRACE_S="2", DEVELOP_MODE="1")
    try:
        server.wait_ready()
        task_id = server_submit(server.url, shared_clip(LONG_CLIP), TRANSCRIBE)
        server_wait_status(server.url, task_id, "processing", timeout_s=60)
        stream = EventStreamReader(f"{server.url}/api/v1/tasks/{task_id}/events")
        stream.start()
        synchronous: dict[str, httpx.Response] = {}
        waiter = threading.Thread(
            target=lambda: synchronous.setdefault(
                "answer",
                server_upload(server.url, "/v1/audio/transcriptions", shared_clip(LONG_CLIP)),
            ),
            daemon=True,
        )
        waiter.start()
        arriving = SlowUpload.open(server.url, TRANSCRIBE, 1_000_000)
        # Every client is there before the signal: the stream has its first event, the
        # synchronous request's job waits in the queue, the upload's body is being read.
        wait_until(lambda: stream.events, message="the event stream never started")
        wait_until(
            lambda: server_decoder_status(server.url)["tasks_in_queue"] == 1,
            timeout_s=60,
            message="the synchronous request's job never reached the queue",
        )
        arriving.wait_read()

        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        status, answer, _ = arriving.answer(timeout_s=10)
        upload_answer_s = time.monotonic() - signalled
        arriving.close()
        final = server_wait_final(server.url, task_id, timeout_s=30)
        stream.join(timeout=30)
        waiter.join(timeout=30)
        exit_code = server.process.wait(timeout=60)
        exit_s = time.monotonic() - signalled
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=20)
    sync_answer = synchronous["answer"]
    last_event, last_data = stream.events[-1]
    print(
        f"\nrow 5: upload in flight answered {status} {upload_answer_s:.2f} s after SIGTERM; "
        f"poller saw {final['status']}; event stream ended with {last_event}; "
        f"OpenAI request answered {sync_answer.status_code}; exit {exit_code} after {exit_s:.1f} s"
    )
    assert status == 503 and b"retry-after" in answer.lower()
    assert upload_answer_s < 2.0
    assert final["status"] == "failed" and "shut down while this job ran" in str(final["error"])
    assert stream.ended_cleanly and last_event == "failed"
    assert "shut down while this job ran" in last_data
    assert sync_answer.status_code == 503, sync_answer.text
    assert "upload it again" in sync_answer.text and "retry-after" in sync_answer.headers
    assert exit_code == 0
