"""Uploads in flight (app.service.uploads): their limits, their pace, abandoned on shutdown."""

from __future__ import annotations

import asyncio

import pytest

from app.config import Settings
from app.service.uploads import (
    BodyPace,
    PaceRules,
    TooManyClientUploadsError,
    TooManyUploadsError,
    UploadAbandonedError,
    UploadGate,
    UploadIdleError,
    UploadTimeoutError,
    UploadTooSlowError,
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


class Trickle:
    """A body read that reports `size` bytes every `every_s` of the fake clock, forever."""

    def __init__(self, clock: FakeClock, pace: BodyPace, size: int, every_s: float) -> None:
        self.clock, self.pace, self.size, self.every_s = clock, pace, size, every_s

    async def read(self) -> bytes:
        while True:
            await self.clock.sleep(self.every_s)
            self.pace.arrived(self.size)


async def _run_until_done(
    clock: FakeClock, receiving: asyncio.Future[bytes], limit_s: float
) -> float:
    """Advance the fake clock a second at a time until `receiving` ends; the seconds it took."""
    started = clock.monotonic()
    while not receiving.done() and clock.monotonic() - started < limit_s:
        clock.advance(1)
        for _ in range(5):
            await asyncio.sleep(0)
    return clock.monotonic() - started


DEFAULT_PACE = PaceRules(
    idle_timeout_s=Settings().upload_idle_timeout_s,
    min_rate_bps=Settings().upload_min_rate_bps,
    grace_s=Settings().upload_rate_grace_s,
)


async def test_ten_bytes_a_second_ends_too_slow_within_ninety_seconds_by_default() -> None:
    """With the default pace a 10 B/s body ends with UploadTooSlowError after the grace (< 90 s)."""
    clock = FakeClock(autoadvance=False)
    gate = UploadGate(limit=2, timeout_s=300, clock=clock, pace=DEFAULT_PACE)
    pace = gate.pace()
    receiving = asyncio.ensure_future(gate.receive(Trickle(clock, pace, 10, 1).read(), pace))
    took = await _run_until_done(clock, receiving, 120)
    with pytest.raises(UploadTooSlowError, match="500 bytes per second"):
        await receiving
    assert DEFAULT_PACE.grace_s <= took <= 90


async def test_a_stalled_body_ends_at_the_idle_timeout() -> None:
    """Nothing arriving for UPLOAD_IDLE_TIMEOUT_S ends the body (no minimum rate here)."""
    clock = FakeClock(autoadvance=False)
    gate = UploadGate(limit=2, timeout_s=300, clock=clock, pace=PaceRules(idle_timeout_s=20))
    pace = gate.pace()
    pace.arrived(1000)
    receiving = asyncio.ensure_future(gate.receive(_never(), pace))
    took = await _run_until_done(clock, receiving, 60)
    with pytest.raises(UploadIdleError, match="20 s"):
        await receiving
    assert 20 <= took <= 21


async def test_a_slow_phone_link_passes_the_default_pace() -> None:
    """2 kB/s (16 kbit/s, a poor GPRS link) with one 45 s stall keeps going past the grace."""
    clock = FakeClock(autoadvance=False)
    gate = UploadGate(limit=2, timeout_s=300, clock=clock, pace=DEFAULT_PACE)
    pace = gate.pace()

    async def phone() -> bytes:
        for second in range(120):
            await clock.sleep(1)
            if not 40 <= second < 85:  # a tunnel: nothing for 45 s
                pace.arrived(2000)
        return b"whole body"

    receiving = asyncio.ensure_future(gate.receive(phone(), pace))
    await _run_until_done(clock, receiving, 150)
    assert await receiving == b"whole body"


async def test_one_client_holds_at_most_its_share_of_upload_places() -> None:
    """Past `per_client` places one client is refused (its own error); others still get one."""
    gate = UploadGate(limit=4, per_client=2, timeout_s=30, clock=FakeClock())
    async with gate.place("a"), gate.place("a"):
        with pytest.raises(TooManyClientUploadsError, match="from this client"):
            async with gate.place("a"):
                pass
        async with gate.place("b"):
            assert gate.in_flight == 3
    async with gate.place("a"), gate.place("a"):
        assert gate.in_flight == 2
