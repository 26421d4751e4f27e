"""SIGTERM on the real `whisper-api` process while it transcribes: drain, finish, exit 0."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from app.bench.runner import word_error_rate
from tests.attack_clients import SlowUpload
from tests.conftest import reference_text, shared_clip
from tests.server_process import start_server, upload

pytestmark = pytest.mark.real_model

GRACE_S = 120  # far more than the 120 s clip needs on two CPU cores with `base`
LONG_CLIP = "en_longform_tedlium_120s.flac"


def poll_status(url: str, task_id: str) -> dict[str, object]:
    """The task as the seed's status route reports it."""
    body: dict[str, object] = httpx.get(
        url + "/api/v1/status", params={"task_id": task_id}, timeout=10
    ).json()
    return body


def test_sigterm_drains_finishes_the_running_job_and_exits_0(tmp_path: Path) -> None:
    """SIGTERM mid-job: /readyz 503, uploads 503 + Retry-After, waiting job fails, the
    running job finishes and can be read, and the process exits 0 within the grace."""
    server = start_server(tmp_path, SHUTDOWN_GRACE_S=str(GRACE_S))
    try:
        server.wait_ready()
        running = upload(server.url, "/api/v1/transcribe", shared_clip(LONG_CLIP)).json()
        waiting = upload(server.url, "/api/v1/transcribe", shared_clip("en_jfk.flac")).json()
        deadline = time.monotonic() + 60
        while poll_status(server.url, running["task_id"])["status"] != "processing":
            assert time.monotonic() < deadline, "the long job never started"
            time.sleep(0.05)

        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        ready = httpx.get(server.url + "/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["reason"] == "the server is shutting down"
        refused = upload(server.url, "/api/v1/transcribe", shared_clip("en_jfk.flac"))
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) >= 1
        # Uploads are refused from the signal on; the queue is drained at the server's
        # next tick (uvicorn's 0.1 s loop), so the waiting job fails a moment later.
        lost = poll_status(server.url, waiting["task_id"])
        while lost["status"] == "pending" and time.monotonic() - signalled < 5:
            time.sleep(0.05)
            lost = poll_status(server.url, waiting["task_id"])
        assert lost["status"] == "failed"
        assert "upload it again" in str(lost["error"])
        assert poll_status(server.url, running["task_id"])["status"] == "processing"

        final = poll_status(server.url, running["task_id"])
        while final["status"] not in ("finished", "failed"):
            assert time.monotonic() - signalled < GRACE_S, "the job outlived the grace"
            time.sleep(0.2)
            final = poll_status(server.url, running["task_id"])
        assert final["status"] == "finished"
        assert word_error_rate(reference_text(LONG_CLIP), str(final["transcript"])) <= 0.25

        assert server.process.wait(timeout=GRACE_S) == 0
        assert time.monotonic() - signalled < GRACE_S
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=20)
    events = {}
    for line in server.log_path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            events[record["event"]] = record
    assert events["shutdown_draining"]["queued_jobs_failed"] == 1
    assert events["shutdown_running_jobs_ended"]["finished"] == 1


class EventStreamReader(threading.Thread):
    """Reads a task's event stream until it ends; keeps the event names it saw."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.events: list[str] = []
        self.data: list[str] = []
        self.ended_cleanly = False

    def run(self) -> None:
        with contextlib.suppress(httpx.HTTPError), httpx.stream("GET", self.url, timeout=120) as r:
            for line in r.iter_lines():
                if line.startswith("event:"):
                    self.events.append(line.split(":", 1)[1].strip())
                elif line.startswith("data:"):
                    self.data.append(line.split(":", 1)[1].strip())
            self.ended_cleanly = True


def test_sigterm_past_the_grace_answers_every_client_before_closing(tmp_path: Path) -> None:
    """Row 5: past the grace, every client of the running job hears `failed` before exit."""
    server = start_server(tmp_path, SHUTDOWN_GRACE_S="2", DEVELOP_MODE="1")
    try:
        server.wait_ready()
        running = upload(server.url, "/api/v1/transcribe", shared_clip(LONG_CLIP)).json()
        task_id = running["task_id"]
        deadline = time.monotonic() + 60
        while poll_status(server.url, task_id)["status"] != "processing":
            assert time.monotonic() < deadline, "the long job never started"
            time.sleep(0.05)
        stream = EventStreamReader(f"{server.url}/api/v1/tasks/{task_id}/events")
        stream.start()
        synchronous: dict[str, httpx.Response] = {}
        waiter = threading.Thread(
            target=lambda: synchronous.setdefault(
                "answer", upload(server.url, "/v1/audio/transcriptions", shared_clip(LONG_CLIP))
            ),
            daemon=True,
        )
        waiter.start()
        arriving = SlowUpload.open(server.url, "/api/v1/transcribe", 1_000_000)
        time.sleep(1.0)

        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        status, answer, _ = arriving.answer(timeout_s=10)
        upload_answer_s = time.monotonic() - signalled
        arriving.close()
        final = poll_status(server.url, task_id)
        while final["status"] not in ("finished", "failed"):
            assert time.monotonic() - signalled < 30, "nobody ended the running job"
            time.sleep(0.1)
            final = poll_status(server.url, task_id)
        stream.join(timeout=30)
        waiter.join(timeout=30)
        exit_code = server.process.wait(timeout=60)
        exit_s = time.monotonic() - signalled
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=20)
    sync_answer = synchronous["answer"]
    print(
        f"\nrow 5: upload in flight answered {status} {upload_answer_s:.2f} s after SIGTERM; "
        f"poller saw {final['status']}; event stream ended with {stream.events[-1:]}; "
        f"OpenAI request answered {sync_answer.status_code}; exit {exit_code} after {exit_s:.1f} s"
    )
    assert status == 503 and b"retry-after" in answer.lower()
    assert upload_answer_s < 2.0
    assert final["status"] == "failed" and "shut down while this job ran" in str(final["error"])
    assert stream.ended_cleanly and stream.events[-1] == "failed"
    assert "shut down while this job ran" in stream.data[-1]
    assert sync_answer.status_code == 503, sync_answer.text
    assert "upload it again" in sync_answer.text and "retry-after" in sync_answer.headers
    assert exit_code == 0
