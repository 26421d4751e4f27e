"""Memory is bounded by what was uploaded: waiting jobs hold their uploads, never decoded audio."""

from __future__ import annotations

import io
import resource
import threading
from pathlib import Path

import av
import numpy as np
import pytest
from litestar.testing import AsyncTestClient

from tests.asgi_helpers import upload
from tests.conftest import FakeTranscriber, build_fake_app

MIB = 1024 * 1024
MINUTES = 30


@pytest.fixture(scope="module")
def long_flac() -> bytes:
    """30 minutes of a faint constant level as FLAC: 330 KB that decode to 115 MB of float32."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=16000)
        stream.layout = "mono"
        minute = np.full((1, 16000 * 60), 300, dtype=np.int16)
        for index in range(MINUTES):
            frame = av.AudioFrame.from_ndarray(minute, format="s16", layout="mono")
            frame.sample_rate = 16000
            frame.pts = index * minute.shape[1]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def rss_bytes() -> int:
    """This process's resident memory now."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


async def test_six_long_uploads_queued_behind_a_running_job_stay_small(long_flac: bytes) -> None:
    """Six 30-minute uploads waiting behind a running job raise RSS far less than their samples."""
    gate = threading.Event()
    app, service = build_fake_app(FakeTranscriber(gate=gate), shutdown_grace_s=0)
    decoded_each = MINUTES * 60 * 16000 * 4
    try:
        async with AsyncTestClient(app=app) as client:
            running = await upload(client, params={"language": "en"})
            assert running.status_code == 200
            before = rss_bytes()
            for _ in range(6):
                queued = await upload(
                    client, long_flac, name="long.flac", params={"language": "en"}
                )
                assert queued.status_code == 200, queued.text
                assert queued.json()["audio_duration"] == pytest.approx(MINUTES * 60)
            grown = rss_bytes() - before
            assert service.backend.counts().waiting == 6
            assert service.backend.counts().waiting_bytes == 6 * len(long_flac)
            gate.set()
    finally:
        gate.set()
    # Decoded, they would hold 6 x 115 MB; as uploads they hold 6 x 0.33 MB.
    assert grown < min(100 * MIB, decoded_each), f"RSS grew by {grown / MIB:.0f} MiB"


async def test_max_queued_mb_refuses_with_429_when_uploads_fill_it(long_flac: bytes) -> None:
    """Once waiting uploads fill MAX_QUEUED_MB, the next upload gets 429 + Retry-After."""
    gate = threading.Event()
    app, service = build_fake_app(FakeTranscriber(gate=gate), max_queued_mb=1, shutdown_grace_s=0)
    fits = MIB // len(long_flac)
    try:
        async with AsyncTestClient(app=app) as client:
            assert (await upload(client, params={"language": "en"})).status_code == 200
            for _ in range(fits):
                accepted = await upload(client, long_flac, params={"language": "en"})
                assert accepted.status_code == 200
            refused = await upload(client, long_flac, params={"language": "en"})
            assert refused.status_code == 429
            assert int(refused.headers["retry-after"]) >= 1
            assert "1 MB of uploads" in refused.json()["detail"]
            assert service.backend.counts().waiting == fits
    finally:
        gate.set()
