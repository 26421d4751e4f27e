"""Row 4 of the hardening review, against a real server: slow uploads cannot fill the queue."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.attack_clients import SlowUpload, multipart_head, trickle_until_answered
from tests.conftest import shared_clip
from tests.server_process import (
    Server,
    server_decoder_status,
    server_upload,
    server_wait_final,
)

pytestmark = pytest.mark.real_model

UPLOAD_TIMEOUT_S = 3.0
IN_FLIGHT = 4


def test_trickling_uploads_hold_upload_places_for_a_bounded_time(
    server_factory: Callable[..., Server],
) -> None:
    """Slow or lying bodies hold upload places (not queue places) until 408 at the timeout."""
    server = server_factory(
        DEVELOP_MODE="1",
        MAX_TASK_QUEUE_SIZE="2",
        MAX_UPLOADS_IN_FLIGHT=str(IN_FLIGHT),
        MAX_UPLOADS_IN_FLIGHT_PER_CLIENT=str(IN_FLIGHT),  # every slow client is 127.0.0.1 here
        UPLOAD_TIMEOUT_S=str(UPLOAD_TIMEOUT_S),
    )
    path = "/api/v1/transcribe"
    # Three trickle a byte at a time; one declares 50 bytes more than it will ever send.
    slow = [SlowUpload.open(server.url, path, 1_000_000) for _ in range(IN_FLIGHT - 1)]
    head = multipart_head()
    slow.append(SlowUpload.open(server.url, path, len(head) + 50, head))
    for client in slow:
        client.wait_read()  # the server reads its body: it holds one of the upload places
    extra = SlowUpload.open(server.url, path, 1_000_000)
    status, answer, extra_s = extra.answer(timeout_s=2)
    extra.close()
    assert status == 429, answer
    assert b"too many uploads in progress" in answer and b"queue is full" not in answer
    state = server_decoder_status(server.url)
    metrics = httpx.get(server.url + "/metrics", timeout=5).text
    assert state["tasks_in_queue"] == 0
    assert "whisper_api_queue_depth 0" in metrics
    # A byte every 0.5 s, until the server answers, does not extend the limit.
    trickle_until_answered(slow[:-1], every_s=0.5, timeout_s=UPLOAD_TIMEOUT_S + 5)
    answers = [client.answer(timeout_s=UPLOAD_TIMEOUT_S + 5) for client in slow]
    closed = [client.is_closed_by_server() for client in slow]
    for client in slow:
        client.close()
    good = server_upload(server.url, path, shared_clip("en_jfk.flac"), timeout_s=60)
    print(
        f"\nrow 4: extra upload answered {status} in {extra_s:.2f} s; slow uploads answered "
        f"{[a[0] for a in answers]} after {[round(a[2], 1) for a in answers]} s "
        f"(UPLOAD_TIMEOUT_S={UPLOAD_TIMEOUT_S:g}); connections closed: {closed}; "
        f"waiting jobs meanwhile: {state['tasks_in_queue']}; "
        f"good upload after: {good.status_code}; peak RSS {server.peak_rss_mib():.0f} MiB"
    )
    assert extra_s < 1.0
    assert [a[0] for a in answers] == [408] * IN_FLIGHT
    assert all(UPLOAD_TIMEOUT_S - 0.5 <= a[2] <= UPLOAD_TIMEOUT_S + 2 for a in answers)
    assert all(closed)
    assert good.status_code == 200, good.text
    assert server_wait_final(server.url, good.json()["task_id"])["status"] == "finished"
