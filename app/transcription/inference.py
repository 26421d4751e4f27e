"""The inference thread: one thread for every model call, and whether one is still running.

Model calls (CTranslate2) release the GIL but cannot be interrupted mid-batch.
Knowing whether one still runs lets the server exit at shutdown without waiting
minutes for a result that a stopped job no longer wants.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["InferenceExecutor"]

P = ParamSpec("P")
T = TypeVar("T")


class InferenceExecutor(concurrent.futures.ThreadPoolExecutor):
    """The one inference thread, counting the calls it has not finished."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="inference")
        self._lock = threading.Lock()
        self._unfinished = 0

    @property
    def busy(self) -> bool:
        """Whether a model call is queued or running (it cannot be interrupted mid-batch)."""
        with self._lock:
            return self._unfinished > 0

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[T]:
        """Run `fn` in the inference thread, counted until it returns."""

        def counted() -> T:
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self._unfinished -= 1

        with self._lock:
            self._unfinished += 1
        try:
            return super().submit(counted)
        except RuntimeError:  # shut down: nothing was queued
            with self._lock:
                self._unfinished -= 1
            raise
