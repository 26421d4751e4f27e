"""Key names, channels and the atomic scripts that every API node and worker share.

Keys hold task ids (random hex) only, never file names. Who writes what:

| key | type | written by |
|---|---|---|
| `whisper:jobs` | stream, group `workers` | API node adds; workers read, ack |
| `whisper:jobs:model:{name}` | the same, for jobs that name a model | read by workers offering it |
| `whisper:waiting` | sorted set id → arrival number | API node adds; worker or cancel removes |
| `whisper:waiting_bytes` | integer | together with `whisper:waiting` |
| `whisper:places` | sorted set token → deadline (ms) | API node: places held for uploads |
| `whisper:job:{id}` | the `Job` record (msgpack) | API node creates, worker updates; TTL |
| `whisper:audio:{id}` | the upload's bytes | API node; deleted when the job ends |
| `whisper:cancel:{id}` | a cancel reason | API node; the running worker reads it |
| `whisper:running` | hash id → worker name | worker |
| `whisper:attempts` | hash id → deliveries | worker |
| `whisper:worker:{name}` | the worker's registration (msgpack), TTL | worker |
| channel `whisper:changes` | a changed record (msgpack) | worker publishes; API nodes listen |
| channel `whisper:cancels` | a task id | API node publishes; workers listen |
"""

from __future__ import annotations

__all__ = ["GROUP", "RESERVE", "SUBMIT", "TAKE", "WITHDRAW", "Keys"]

GROUP = "workers"


class Keys:
    """The names under one prefix (tests give each run its own)."""

    def __init__(self, prefix: str = "whisper") -> None:
        self.prefix = prefix
        self.stream = f"{prefix}:jobs"
        self.waiting = f"{prefix}:waiting"
        self.waiting_bytes = f"{prefix}:waiting_bytes"
        self.sequence = f"{prefix}:sequence"
        self.places = f"{prefix}:places"
        self.running = f"{prefix}:running"
        self.attempts = f"{prefix}:attempts"
        self.changes = f"{prefix}:changes"
        self.cancels = f"{prefix}:cancels"

    def job(self, task_id: str) -> str:
        """The record of one task."""
        return f"{self.prefix}:job:{task_id}"

    def audio(self, task_id: str) -> str:
        """The upload of one task, until the job ends."""
        return f"{self.prefix}:audio:{task_id}"

    def cancel(self, task_id: str) -> str:
        """Why a running task was asked to stop."""
        return f"{self.prefix}:cancel:{task_id}"

    def model_stream(self, model: str) -> str:
        """The stream of jobs that ask for `model` (read only by workers that offer it)."""
        return f"{self.stream}:model:{model}"

    def stream_for(self, model: str | None) -> str:
        """Where a job goes: its model's stream, or the one every worker reads."""
        return self.stream if model is None else self.model_stream(model)

    def worker(self, name: str) -> str:
        """One worker's registration."""
        return f"{self.prefix}:worker:{name}"

    @property
    def worker_pattern(self) -> str:
        """Every worker's registration, for SCAN."""
        return f"{self.prefix}:worker:*"


# KEYS: waiting, places, waiting_bytes. ARGV: now_ms, deadline_ms, token, max_jobs,
# max_bytes, expected_bytes. A place is refused when waiting jobs plus held places
# reach MAX_TASK_QUEUE_SIZE, or the declared bytes would pass MAX_QUEUED_MB (an
# upload larger than the whole bound is taken when nothing waits). Held places
# expire, so an API node that dies mid-upload does not keep them.
RESERVE = """
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
local waiting = redis.call('ZCARD', KEYS[1])
if waiting + redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 'jobs' end
local held = tonumber(redis.call('GET', KEYS[3]) or '0')
if waiting > 0 and held + tonumber(ARGV[6]) > tonumber(ARGV[5]) then return 'bytes' end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 'ok'
"""

# KEYS: waiting, places, waiting_bytes, sequence, job, audio, stream.
# ARGV: token, task id, record, upload, max_bytes.
SUBMIT = """
local waiting = redis.call('ZCARD', KEYS[1])
local held = tonumber(redis.call('GET', KEYS[3]) or '0')
local size = string.len(ARGV[4])
if waiting > 0 and held + size > tonumber(ARGV[5]) then return 'bytes' end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SET', KEYS[5], ARGV[3])
redis.call('SET', KEYS[6], ARGV[4])
redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[4]), ARGV[2])
redis.call('INCRBY', KEYS[3], size)
redis.call('XADD', KEYS[7], '*', 'id', ARGV[2])
return 'ok'
"""

# A worker starts a job. KEYS: waiting, waiting_bytes, job, audio, running, attempts, cancel.
# ARGV: task id, worker name. Returns {record, upload, attempts, cancel reason} or
# {} when the record is gone or final (cancelled or deleted while it waited).
TAKE = """
local record = redis.call('GET', KEYS[3])
if not record then return {} end
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('DECRBY', KEYS[2], redis.call('STRLEN', KEYS[4]))
end
local upload = redis.call('GET', KEYS[4])
if not upload then return {} end
redis.call('HSET', KEYS[5], ARGV[1], ARGV[2])
local attempts = redis.call('HINCRBY', KEYS[6], ARGV[1], 1)
local reason = redis.call('GET', KEYS[7]) or ''
return {record, upload, attempts, reason}
"""

# An API node takes a waiting job out of the queue (cancel, delete).
# KEYS: waiting, waiting_bytes, job, audio. ARGV: task id, failed record, ttl_s.
# Returns 1 when the job was waiting (now failed), 0 otherwise.
WITHDRAW = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('DECRBY', KEYS[2], redis.call('STRLEN', KEYS[4]))
redis.call('DEL', KEYS[4])
redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[3])
return 1
"""
