"""Fixtures of the transcription tests."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

import pytest

from tests.conftest import FakeTranscriber
from tests.transcription.rig import Rig, RoutingTranscriber, start_rig


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    """A started worker: prompt "block" waits on a gate, "fail" raises, others succeed."""
    gate = threading.Event()
    transcriber = RoutingTranscriber(
        routes={
            "block": FakeTranscriber(gate=gate),
            "fail": FakeTranscriber(fail_with=RuntimeError("secret words from the audio")),
        }
    )
    started = start_rig(transcriber, gate=gate)
    try:
        yield started
    finally:
        gate.set()
        await started.worker.stop()
