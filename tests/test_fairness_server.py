"""Issue 25 against a real server: one address's trickling uploads lock nobody else out."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.attack_clients import SlowUpload, trickle_until_answered
from tests.conftest import shared_clip
from tests.server_process import Server, server_wait_final

pytestmark = pytest.mark.real_model

TRICKLING = 20
PER_CLIENT = 4  # the default: a quarter of MAX_UPLOADS_IN_FLIGHT=16
GRACE_S = 4.0  # UPLOAD_RATE_GRACE_S, shortened from 30 s so the test is quick


def test_twenty_trickling_uploads_from_one_address_lock_out_nobody_else(
    server_factory: Callable[..., Server],
) -> None:
    """20 trickles from one address hold 4 places (the rest 429 at once); another address is
    accepted at once and transcribed; each 10 B/s trickle ends with 408 after the grace."""
    server = server_factory(DEVELOP_MODE="1", UPLOAD_RATE_GRACE_S=str(GRACE_S))
    path = "/api/v1/transcribe?language=en"
    slow = [SlowUpload.open(server.url, path, 1_000_000) for _ in range(TRICKLING)]
    time.sleep(1.0)  # every connection has been answered or read by now
    first_answers = [client.answer(timeout_s=0.05) for client in slow]
    refused = [answer for answer in first_answers if answer[0] == 429]
    held = [client for client, answer in zip(slow, first_answers, strict=True) if answer[0] is None]
    assert len(held) == PER_CLIENT and len(refused) == TRICKLING - PER_CLIENT, first_answers
    assert all(b"MAX_UPLOADS_IN_FLIGHT_PER_CLIENT" in raw for _, raw, _ in refused)
    assert all(b"retry-after: " in raw.lower() for _, raw, _ in refused)

    other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=30)
    started = time.monotonic()
    with shared_clip("en_jfk.flac").open("rb") as clip:
        accepted = other.post(server.url + path, files={"file": ("jfk.flac", clip)})
    accepted_s = time.monotonic() - started
    assert accepted.status_code == 200, accepted.text

    # 10 bytes a second (a byte every 0.1 s) until the server answers each of them.
    trickle_until_answered(held, every_s=0.1, timeout_s=GRACE_S + 10)
    answers = [client.answer(timeout_s=5) for client in held]
    closed = [client.is_closed_by_server() for client in held]
    for client in slow:
        client.close()
    final = server_wait_final(server.url, accepted.json()["task_id"])
    metrics = httpx.get(server.url + "/metrics", timeout=5).text
    print(
        f"\nfairness: {len(refused)} of {TRICKLING} trickles refused at once, {len(held)} held; "
        f"another address accepted in {accepted_s:.2f} s; the held trickles answered "
        f"{[a[0] for a in answers]} after {[round(a[2], 1) for a in answers]} s "
        f"(UPLOAD_RATE_GRACE_S={GRACE_S:g}); closed: {closed}"
    )
    assert accepted_s < 2.0
    assert final["status"] == "finished"
    assert [a[0] for a in answers] == [408] * PER_CLIENT
    assert all(b"too slowly" in raw for _, raw, _ in answers)
    assert all(GRACE_S - 0.5 <= elapsed <= GRACE_S + 3 for _, _, elapsed in answers)
    assert all(closed)
    assert 'reason="client_uploads_in_flight"} 16.0' in metrics
    assert 'reason="upload_too_slow"} 4.0' in metrics
