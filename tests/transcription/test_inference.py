"""The inference thread (app.transcription.inference): busy while a model call runs."""

from __future__ import annotations

import threading

from app.transcription.inference import InferenceExecutor


def test_busy_while_a_call_is_queued_or_running_and_idle_after() -> None:
    """`busy` is True from submit until the call returns, then False again."""
    executor = InferenceExecutor()
    release = threading.Event()
    try:
        assert not executor.busy
        future = executor.submit(release.wait, 5)
        assert executor.busy
        release.set()
        assert future.result(timeout=5) is True
        assert not executor.busy
    finally:
        executor.shutdown(wait=True)


def test_a_call_that_raises_is_no_longer_counted() -> None:
    """A failing call still ends the count, and its exception reaches the caller."""
    executor = InferenceExecutor()
    try:
        future = executor.submit(int, "not a number")
        assert isinstance(future.exception(timeout=5), ValueError)
        assert not executor.busy
    finally:
        executor.shutdown(wait=True)
