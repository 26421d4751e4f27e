"""SIGTERM on the real `whisper-api` process while it transcribes: drain, finish, exit 0."""

from __future__ import annotations

import contextlib
import json
import signal
import time
from pathlib import Path

import httpx
import pytest

from app.bench import word_error_rate
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
