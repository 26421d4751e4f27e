"""Uploads in flight (app.service.uploads): their own limit, a time limit, abandoned on shutdown."""

from __future__ import annotations

import asyncio

import pytest

from app.service.uploads import (
    TooManyUploadsError,
    UploadAbandonedError,
    UploadGate,
    UploadTimeoutError,
)
from tests.transcription.rig import FakeClock


async def _never() -> bytes:
    await asyncio.Event().wait()
    return b""


async def _soon() -> bytes:
    await asyncio.sleep(0)
    return b"body"


async def test_a_body_that_does_not_arrive_in_time_ends_with_a_timeout() -> None:
    """A body still arriving when UPLOAD_TIMEOUT_S has passed raises UploadTimeoutError."""
    clock = FakeClock(autoadvance=False)
    gate = UploadGate(limit=2, timeout_s=30, clock=clock)
    receiving = asyncio.ensure_future(gate.receive(_never()))
    await asyncio.sleep(0.01)
    assert not receiving.done()
    clock.advance(31)
    with pytest.raises(UploadTimeoutError, match="30 s"):
        await receiving


async def test_a_body_that_arrives_in_time_is_returned() -> None:
    """A body read that ends before the timeout gives its result."""
    gate = UploadGate(limit=1, timeout_s=30, clock=FakeClock(autoadvance=False))
    assert await gate.receive(_soon()) == b"body"


async def test_upload_places_have_their_own_limit_and_are_given_back() -> None:
    """Past `limit` uploads in flight the next is refused at once; a finished one frees one."""
    gate = UploadGate(limit=2, timeout_s=30, clock=FakeClock())
    async with gate.place(), gate.place():
        assert gate.in_flight == 2
        with pytest.raises(TooManyUploadsError, match="2 at once"):
            async with gate.place():
                pass
    assert gate.in_flight == 0
    async with gate.place():
        assert gate.in_flight == 1


async def test_closing_the_gate_abandons_bodies_still_arriving() -> None:
    """On shutdown a body still arriving is abandoned at once, not left to its timeout."""
    gate = UploadGate(limit=2, timeout_s=3600, clock=FakeClock(autoadvance=False))
    receiving = asyncio.ensure_future(gate.receive(_never()))
    await asyncio.sleep(0.01)
    gate.close()
    with pytest.raises(UploadAbandonedError):
        await asyncio.wait_for(receiving, 2)
