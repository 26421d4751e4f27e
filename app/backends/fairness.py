"""The queue's order across clients (QUEUE_POLICY), shared by both backends.

`fair` (the default) serves the clients with waiting jobs in turn, one job each
per round, first in first out within each client: a client's backlog delays
another client's job by at most one job per client ahead of it. `fifo` is one
line for everybody, in arrival order.

A client is a hash of an API key or of an address (`Job.client`, set by the
intake); jobs without one (made inside the process, or by tests) share one line.
The memory queue keeps its ring here (`ClientRing`); Redis keeps the same ring
in lists (`app.backends.redis.keys`), and both compute positions with
`round_robin`.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Literal, TypeVar

from app.transcription.jobs import Job

__all__ = ["ClientRing", "QueuePolicy", "client_of", "round_robin"]

T = TypeVar("T")

QueuePolicy = Literal["fair", "fifo"]

# The line of jobs that name no client.
NO_CLIENT = ""


def client_of(job: Job) -> str:
    """The line `job` waits in."""
    return job.client or NO_CLIENT


def round_robin(lines: Sequence[Sequence[T]]) -> Iterator[T]:
    """The order in which jobs start: one of each line per round, lines in ring order."""
    rounds = max((len(line) for line in lines), default=0)
    for index in range(rounds):
        for line in lines:
            if index < len(line):
                yield line[index]


class ClientRing:
    """The clients with waiting jobs, in the order they are served next, and their counts."""

    def __init__(self) -> None:
        self._ring: collections.deque[str] = collections.deque()
        self._waiting: collections.Counter[str] = collections.Counter()

    def __len__(self) -> int:
        """Clients with waiting jobs."""
        return len(self._ring)

    def waiting(self, client: str) -> int:
        """How many jobs `client` has waiting."""
        return self._waiting[client]

    @property
    def most(self) -> int:
        """The most waiting jobs of any one client."""
        return max(self._waiting.values(), default=0)

    @property
    def order(self) -> list[str]:
        """Clients in the order they are served next."""
        return list(self._ring)

    def added(self, client: str, *, first: bool = False) -> None:
        """One more waiting job of `client`; a new client joins at the end (or at the front)."""
        if self._waiting[client] == 0:
            if first:
                self._ring.appendleft(client)
            else:
                self._ring.append(client)
        elif first:
            self._ring.remove(client)
            self._ring.appendleft(client)
        self._waiting[client] += 1

    def removed(self, client: str, *, served: bool = False) -> None:
        """One job of `client` left the queue; `served`: it was its turn, the next client's now."""
        self._waiting[client] -= 1
        if self._waiting[client] <= 0:
            del self._waiting[client]
            self._ring.remove(client)
        elif served and self._ring and self._ring[0] == client:
            self._ring.rotate(-1)

    def clear(self) -> None:
        """No job waits any more."""
        self._ring.clear()
        self._waiting.clear()

    def lines(self, jobs: Iterable[T], client: Callable[[T], str]) -> list[list[T]]:
        """`jobs` (in arrival order) split into each client's line, in ring order."""
        by_client: dict[str, list[T]] = {name: [] for name in self._ring}
        for item in jobs:
            by_client.setdefault(client(item), []).append(item)
        return list(by_client.values())
