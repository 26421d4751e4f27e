"""The worker's side of the Redis queue: a consumer of the job streams, with takeover.

Workers read the job streams in the consumer group `workers`, so the oldest
waiting job always goes to the next free worker (FIFO across the fleet). Jobs
that ask for no particular model are in `whisper:jobs`; a job that names its
model is in that model's stream, which only workers offering the model read.
A worker that can batch looks at the entries behind the one it took and reads
as many as share its batch key, in order, so short jobs still share a pass.

With QUEUE_POLICY=fair (the default) an entry is a ticket rather than a job: the
`PICK` script chooses the job whose client's turn it is (round-robin across
clients, oldest first within each; `app.backends.fairness`) and remembers the
choice for takeover; a batch companion may be any client's job. `fifo` takes
each entry's own job, in arrival order.

An entry stays pending until its job's final record is written; while the job
runs its worker claims it again every third of JOB_CLAIM_TIMEOUT_S (the
heartbeat, `fleet`), so a long job is never stolen. A worker that dies
stops heartbeating: after JOB_CLAIM_TIMEOUT_S another worker takes the entry
over with XAUTOCLAIM, at most JOB_MAX_ATTEMPTS starts in all, then the job
fails with a reason.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import redis.asyncio as aioredis
import redis.exceptions
import structlog

from app.backends.fairness import QueuePolicy, round_robin
from app.backends.redis.conn import OUTAGE_ERRORS, Backoff, as_text, refusal_code
from app.backends.redis.keys import FAIR_LINES, GROUP, PICK, TAKE, Keys
from app.backends.redis.notify import PublishingNotifier, decode_job
from app.clock import Clock
from app.transcription.jobs import Job, JobStage, JobStatus, QueuedJob

__all__ = ["Entry", "RedisWorkQueue", "ensure_groups"]

log = structlog.get_logger(__name__)

READ_BLOCK_S = 1.0


class Entry(NamedTuple):
    """One stream entry: which stream, its id, and the task it queues."""

    stream: str
    entry_id: str
    task_id: str


async def ensure_groups(client: aioredis.Redis, streams: Iterable[str]) -> None:
    """Create the streams and their consumer group once (another process may have)."""
    for stream in streams:
        try:
            await client.xgroup_create(stream, GROUP, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


class RedisWorkQueue:
    """What the `Worker` takes jobs from in a cluster: the streams of the models it offers."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        keys: Keys,
        notifier: PublishingNotifier,
        clock: Clock,
        name: str,
        models: Iterable[str],
        claim_timeout_s: float,
        max_attempts: int,
        policy: QueuePolicy = "fair",
    ) -> None:
        self._client = client
        self._keys = keys
        self._notifier = notifier
        self._clock = clock
        self.name = name
        self.streams = [keys.stream, *(keys.model_stream(model) for model in models)]
        self.claim_timeout_ms = max(1, round(claim_timeout_s * 1000))
        # While a job runs its record and upload live this long, renewed by each heartbeat:
        # a worker that dies and has no successor leaves nothing behind for ever.
        self.running_ttl_s = max(30, round(claim_timeout_s * 3))
        self._max_attempts = max_attempts
        self._take = client.register_script(TAKE)
        self._pick = client.register_script(PICK)
        self._fair_lines = client.register_script(FAIR_LINES)
        self._policy: QueuePolicy = policy
        self._running: dict[str, tuple[Job, Entry]] = {}
        # Entries read but not started (another worker read the ones that fitted a batch
        # first, or one read came with others): this worker's next jobs, in order.
        self._held: collections.deque[Entry] = collections.deque()
        self._closed = False
        self._backoff = Backoff()

    @property
    def running(self) -> list[Job]:
        """The jobs this worker has taken and not finished."""
        return [job for job, _ in self._running.values()]

    def running_job(self, task_id: str) -> Job | None:
        """The job of `task_id` if this worker runs it now."""
        taken = self._running.get(task_id)
        return taken[0] if taken is not None else None

    def pending_entries(self) -> list[Entry]:
        """Entries this worker holds (running or read): the heartbeat claims them again."""
        return [entry for _, entry in self._running.values()] + list(self._held)

    async def close(self) -> None:
        """Take no more jobs (SIGTERM); hand entries read but not started to the others."""
        self._closed = True
        held, self._held = list(self._held), collections.deque()
        for stream in {entry.stream for entry in held}:
            ids: list[Any] = [entry.entry_id for entry in held if entry.stream == stream]
            # Claimed again as long idle: any worker's XAUTOCLAIM takes them at once.
            with contextlib.suppress(*OUTAGE_ERRORS):
                async with asyncio.timeout(3):
                    await self._client.xclaim(
                        stream, GROUP, self.name, 0, ids,
                        idle=self.claim_timeout_ms, justid=True,
                    )  # fmt: skip
        if held:
            log.info("jobs_handed_back", count=len(held))

    async def next_batch(self, max_size: int, key: Callable[[Job], object]) -> list[QueuedJob]:
        """The next jobs for this worker: an abandoned one first, else the oldest new one,
        plus the entries right behind it that share its batch key (up to `max_size`)."""
        while True:
            if self._closed:
                await asyncio.Event().wait()  # until the worker is stopped
            try:
                entry = await self._next_entry()
                self._backoff.reset()
                if entry is not None and self._policy == "fair":
                    entry = await self._choose(entry)
                taken = await self._start(entry) if entry is not None else None
                if entry is not None and taken is not None:
                    batch = [taken]
                    if max_size > 1 and key(taken.job) is not None:
                        await self._gather(batch, entry.stream, max_size, key)
                    return batch
            except OUTAGE_ERRORS as exc:
                log.warning("redis_unavailable", operation="next_job", error=type(exc).__name__)
                await self._clock.sleep(self._backoff.next_s())
            except redis.exceptions.ResponseError as exc:
                await self._recover(exc)

    async def _recover(self, exc: redis.exceptions.ResponseError) -> None:
        """Redis came back empty (restart, flush, failover to an empty replica): the
        streams and the group are recreated and reading goes on. Any other refusal
        (OOM, READONLY) passes: it is retried after a pause, never the loop's end."""
        code = refusal_code(exc)
        log.warning("redis_refused", operation="next_job", error=code)
        if code == "NOGROUP":
            self._held.clear()  # those entries went with the old stream
            with contextlib.suppress(*OUTAGE_ERRORS, redis.exceptions.ResponseError):
                async with asyncio.timeout(3):
                    await ensure_groups(self._client, self.streams)
                    log.info("redis_group_recreated", streams=len(self.streams))
                    return
        await self._clock.sleep(self._backoff.next_s())

    def done(self, job: Job) -> None:
        """The job has ended: ack its entry once its final record is written."""
        taken = self._running.pop(job.id, None)
        if taken is not None:
            self._notifier.finish(job, taken[1].stream, taken[1].entry_id)

    # -- reading

    async def _next_entry(self) -> Entry | None:
        if self._held:
            return self._held.popleft()
        abandoned = await self._claim_abandoned()
        if abandoned is not None:
            return abandoned
        read = await self._read({stream: ">" for stream in self.streams}, 1, READ_BLOCK_S)
        if not read:
            return None
        self._held.extend(read[1:])  # one per stream at most; the others come next
        return read[0]

    async def _read(
        self, streams: dict[Any, Any], count: int, block_s: float | None
    ) -> list[Entry]:
        block = None if block_s is None else int(block_s * 1000)
        async with asyncio.timeout((block_s or 0) + 3):
            answer = await self._client.xreadgroup(
                GROUP, self.name, streams, count=count, block=block
            )
        found: list[Any] = answer or []  # type: ignore[assignment]
        return [
            Entry(as_text(stream), as_text(entry_id), as_text(fields[b"id"]))
            for stream, entries in found
            for entry_id, fields in entries
        ]

    async def _claim_abandoned(self) -> Entry | None:
        for stream in self.streams:
            async with asyncio.timeout(3):
                answer = await self._client.xautoclaim(
                    stream, GROUP, self.name,
                    min_idle_time=self.claim_timeout_ms, start_id="0-0", count=1,
                )  # fmt: skip
            for entry_id, fields in answer[1]:
                if not fields:  # deleted meanwhile
                    await self._client.xack(stream, GROUP, entry_id)
                    continue
                entry = Entry(stream, as_text(entry_id), as_text(fields[b"id"]))
                log.warning("job_taken_over", task_id=entry.task_id)
                return entry
        return None

    async def _gather(
        self, batch: list[QueuedJob], stream: str, max_size: int, key: Callable[[Job], object]
    ) -> None:
        """Read the entries behind the head that share its key; keep any that do not fit."""
        if self._policy == "fair":
            await self._gather_fair(batch, stream, max_size, key)
            return
        if self._held:
            return  # those come first, in order
        head_key = key(batch[0].job)
        fitting = await self._fitting_entries(stream, max_size - len(batch), key, head_key)
        if not fitting:
            return
        for entry in await self._read({stream: ">"}, len(fitting), None):
            if entry.entry_id not in fitting:  # another worker read the fitting one first
                self._held.append(entry)
                continue
            # A waiting job's record does not change: its key is still the peeked one.
            taken = await self._start(entry)
            if taken is not None:
                batch.append(taken)

    async def _gather_fair(
        self, batch: list[QueuedJob], stream: str, max_size: int, key: Callable[[Job], object]
    ) -> None:
        """Fair order: companions are waiting jobs of any client that share the head's key.

        Each takes one more ticket of the stream; a companion another worker took
        first leaves its ticket with this worker for its next turn.
        """
        head_key = key(batch[0].job)
        async with asyncio.timeout(3):
            lines = await self._fair_lines(keys=[self._keys.ring(stream)], args=[stream])
            waiting = [as_text(task) for task in round_robin(lines or [])]
            records = await self._client.mget([self._keys.job(task) for task in waiting])
        companions = [
            task
            for task, record in zip(waiting, records, strict=True)
            if record is not None and key(decode_job(record)) == head_key
        ][: max_size - len(batch)]
        if not companions:
            return
        tickets = await self._read({stream: ">"}, len(companions), None)
        for ticket, wanted in zip(tickets, companions, strict=False):
            chosen = await self._choose(ticket, wanted=wanted)
            taken = await self._start(chosen) if chosen is not None else None
            if taken is not None:
                batch.append(taken)
        self._held.extend(tickets[len(companions) :])

    async def _fitting_entries(
        self, stream: str, count: int, key: Callable[[Job], object], head_key: object
    ) -> set[str]:
        """The undelivered entries at the stream's head that share `head_key` (a leading run)."""
        async with asyncio.timeout(3):
            groups = await self._client.xinfo_groups(stream)
            last = next(
                (g["last-delivered-id"] for g in groups if as_text(g["name"]) == GROUP), None
            )
            if last is None:
                return set()
            upcoming = await self._client.xrange(stream, min=f"({as_text(last)}", count=count)
            if not upcoming:
                return set()
            ids = [as_text((fields or {})[b"id"]) for _, fields in upcoming]
            records = await self._client.mget([self._keys.job(task_id) for task_id in ids])
        fitting: set[str] = set()
        for (entry_id, _), record in zip(upcoming, records, strict=True):
            if record is None or key(decode_job(record)) != head_key:
                break  # FIFO: never skip a job that cannot join
            fitting.add(as_text(entry_id))
        return fitting

    async def _choose(self, entry: Entry, wanted: str = "") -> Entry | None:
        """The fair order: the job this ticket stands for (see PICK), or None.

        None when no job waits (the entry is acked) or, for a `wanted` companion,
        when that job no longer waits (the entry is kept for the next turn).
        """
        keys = self._keys
        async with asyncio.timeout(3):
            answer = as_text(
                await self._pick(
                    keys=[keys.tickets, keys.client_of, keys.ring(entry.stream)],
                    args=[keys.ticket(entry.stream, entry.entry_id), entry.stream, wanted],
                )
            )
        if answer == "~":
            self._held.append(entry)
            return None
        if not answer:  # the ticket of a job that left the queue: nothing of it stays
            pipe = self._client.pipeline(transaction=True)
            pipe.xack(entry.stream, GROUP, entry.entry_id)
            pipe.xdel(entry.stream, entry.entry_id)
            async with asyncio.timeout(3):
                await pipe.execute()
            return None
        return entry._replace(task_id=answer)

    # -- starting

    async def _start(self, entry: Entry) -> QueuedJob | None:
        """Take the job's record and upload; None when it is gone or ended (acked now)."""
        keys, task_id = self._keys, entry.task_id
        async with asyncio.timeout(3):
            answer = await self._take(
                keys=[keys.waiting, keys.waiting_bytes, keys.job(task_id), keys.audio(task_id),
                      keys.running, keys.attempts, keys.cancel(task_id), keys.deadlines,
                      keys.client_of, keys.waiting_by_client],
                args=[task_id, self.name, self.running_ttl_s],
            )  # fmt: skip
        if not answer:  # cancelled, deleted or expired while it waited: nothing of it stays
            pipe = self._client.pipeline(transaction=True)
            pipe.xack(entry.stream, GROUP, entry.entry_id)
            pipe.xdel(entry.stream, entry.entry_id)
            pipe.hdel(keys.tickets, keys.ticket(entry.stream, entry.entry_id))
            pipe.hdel(keys.entries, task_id)
            pipe.hdel(keys.running, task_id)
            pipe.hdel(keys.attempts, task_id)
            async with asyncio.timeout(3):
                await pipe.execute()
            return None
        record, upload, attempts, reason = answer
        job = decode_job(record)
        self._running[job.id] = (job, entry)
        if int(attempts) > self._max_attempts:
            log.error("job_failed", reason="attempts_exhausted", attempts=int(attempts) - 1)
            job.fail(
                f"the job was started {int(attempts) - 1} times and each time its worker "
                "stopped; please upload it again",
                self._clock.now(),
            )
            self._notifier.notify(job)
            self.done(job)
            # Acked before the next read, or XAUTOCLAIM would hand this entry out again.
            await self._notifier.flush(timeout_s=5)
            return None
        _restart(job)
        if reason:
            job.cancel_reason = as_text(reason)
        return QueuedJob(job, upload)


def _restart(job: Job) -> None:
    """A job taken over starts afresh: nothing of an earlier attempt's progress remains."""
    job.status = JobStatus.PENDING
    job.stage = JobStage.QUEUED
    job.progress = 0.0
    job.expected_done_at = None
    job.progress_guessed = False
    job.partial_segments = []
