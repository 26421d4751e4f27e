"""Key names, channels and the atomic scripts that every API node and worker share.

Keys hold task ids (random hex) only, never file names. Every key has an owner
and an end (docs/architecture.md has the same table with the TTLs):

| key | type | written by | ends |
|---|---|---|---|
| `whisper:jobs` | stream, group `workers` | API node adds | entry XDELed when its job ends |
| `whisper:jobs:model:{name}` | the same, for jobs that name a model | API node adds | the same |
| `whisper:entries` | hash id → stream entry id | SUBMIT | field removed with the entry |
| `whisper:waiting` | sorted set id → arrival number | SUBMIT | TAKE, WITHDRAW, DELETE |
| `whisper:waiting_bytes` | integer | with `whisper:waiting` | never (a counter) |
| `whisper:deadlines` | sorted set id → wait deadline (ms) | SUBMIT | TAKE, WITHDRAW, DELETE |
| `whisper:places` | sorted set token → deadline (ms) | RESERVE | SUBMIT, release, lapse |
| `whisper:sequence` | integer | SUBMIT | never (a counter) |
| `whisper:job:{id}` | the `Job` record (msgpack) | API node, worker | TTL always |
| `whisper:audio:{id}` | the upload's bytes | SUBMIT | TTL; deleted when the job ends |
| `whisper:cancel:{id}` | a cancel reason | API node | TTL; deleted when the job ends |
| `whisper:running` | hash id → worker name | TAKE | when the job ends |
| `whisper:attempts` | hash id → deliveries | TAKE | when the job ends |
| `whisper:workers` | sorted set name → heartbeat deadline (ms) | worker | left, or lapsed |
| `whisper:worker:{name}` | the worker's registration (msgpack) | worker | TTL; on leaving |
| channel `whisper:changes` | a changed record (msgpack) | worker, API node | - |
| channel `whisper:cancels` | a task id | API node publishes; workers listen | - |
| channel `whisper:fleet` | a worker's name | worker, when it joins or leaves | - |
"""

from __future__ import annotations

__all__ = ["DELETE", "GROUP", "RESERVE", "SUBMIT", "TAKE", "WITHDRAW", "Keys"]

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
        self.entries = f"{prefix}:entries"
        self.deadlines = f"{prefix}:deadlines"
        self.workers = f"{prefix}:workers"
        self.fleet = f"{prefix}:fleet"

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


# `#!lua` (Redis 7): the scripts that add data are refused as a whole under `maxmemory`
# (OOM); without it Redis checks only a script's first write, which here frees memory.
#
# KEYS: waiting, places, waiting_bytes. ARGV: now_ms, deadline_ms, token, max_jobs,
# max_bytes, expected_bytes. A place is refused when waiting jobs plus held places
# reach MAX_TASK_QUEUE_SIZE, or the declared bytes would pass MAX_QUEUED_MB (an
# upload larger than the whole bound is taken when nothing waits). Held places
# expire, so an API node that dies mid-upload does not keep them.
RESERVE = """#!lua
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
local waiting = redis.call('ZCARD', KEYS[1])
if waiting + redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 'jobs' end
local held = tonumber(redis.call('GET', KEYS[3]) or '0')
if waiting > 0 and held + tonumber(ARGV[6]) > tonumber(ARGV[5]) then return 'bytes' end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 'ok'
"""

# KEYS: waiting, places, waiting_bytes, sequence, job, audio, stream, deadlines, entries.
# ARGV: token, task id, record, upload, max_bytes, wait_ttl_s, wait_deadline_ms.
# Record and upload expire (JOB_MAX_WAIT_S and a margin) unless a worker takes the
# job; the API nodes fail it with a reason at its deadline, before that.
SUBMIT = """#!lua
local waiting = redis.call('ZCARD', KEYS[1])
local held = tonumber(redis.call('GET', KEYS[3]) or '0')
local size = string.len(ARGV[4])
if waiting > 0 and held + size > tonumber(ARGV[5]) then return 'bytes' end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SET', KEYS[5], ARGV[3], 'EX', ARGV[6])
redis.call('SET', KEYS[6], ARGV[4], 'EX', ARGV[6])
redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[4]), ARGV[2])
redis.call('INCRBY', KEYS[3], size)
redis.call('ZADD', KEYS[8], ARGV[7], ARGV[2])
local entry = redis.call('XADD', KEYS[7], '*', 'id', ARGV[2])
redis.call('HSET', KEYS[9], ARGV[2], entry)
return 'ok'
"""

# A worker starts a job. KEYS: waiting, waiting_bytes, job, audio, running, attempts, cancel,
# deadlines. ARGV: task id, worker name, running_ttl_s. Returns {record, upload, attempts,
# cancel reason} or {} when the record is gone or final (cancelled, deleted or expired
# while it waited). While it runs, record and upload live as long as the worker's
# heartbeat renews them (`running_ttl_s`).
TAKE = """
local record = redis.call('GET', KEYS[3])
if not record then return {} end
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('DECRBY', KEYS[2], redis.call('STRLEN', KEYS[4]))
end
local upload = redis.call('GET', KEYS[4])
if not upload then return {} end
redis.call('ZREM', KEYS[8], ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[3])
redis.call('EXPIRE', KEYS[4], ARGV[3])
redis.call('HSET', KEYS[5], ARGV[1], ARGV[2])
local attempts = redis.call('HINCRBY', KEYS[6], ARGV[1], 1)
local reason = redis.call('GET', KEYS[7]) or ''
return {record, upload, attempts, reason}
"""

# An API node takes a waiting job out of the queue (cancel, its wait ran out).
# KEYS: waiting, waiting_bytes, job, audio, deadlines, entries, stream.
# ARGV: task id, failed record, ttl_s. Returns 1 when the job was waiting (now
# failed, its upload and stream entry gone), 0 otherwise.
WITHDRAW = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('DECRBY', KEYS[2], redis.call('STRLEN', KEYS[4]))
redis.call('DEL', KEYS[4])
redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[3])
redis.call('ZREM', KEYS[5], ARGV[1])
local entry = redis.call('HGET', KEYS[6], ARGV[1])
if entry then redis.call('XDEL', KEYS[7], entry) end
redis.call('HDEL', KEYS[6], ARGV[1])
return 1
"""

# An API node erases a task (its owner deleted it): a waiting job also leaves the
# queue, in the same step. KEYS: waiting, waiting_bytes, job, audio, deadlines,
# entries, stream. ARGV: task id. Returns the record as it was, or false.
DELETE = """
local record = redis.call('GET', KEYS[3])
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('DECRBY', KEYS[2], redis.call('STRLEN', KEYS[4]))
  local entry = redis.call('HGET', KEYS[6], ARGV[1])
  if entry then redis.call('XDEL', KEYS[7], entry) end
  redis.call('HDEL', KEYS[6], ARGV[1])
end
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('DEL', KEYS[3], KEYS[4])
return record
"""
