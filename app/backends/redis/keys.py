"""Key names, channels and the atomic scripts that every API node and worker share.

Keys hold task ids (random hex) only, never file names; a client is a hash
(`Job.client`), never a key or an address. Who writes what:

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
| `whisper:fair:client_of` | hash waiting id → "{stream} {client}" | with `whisper:waiting` |
| `whisper:fair:waiting` | hash client → its waiting jobs (MAX_QUEUED_PER_CLIENT) | the same |
| `{stream}:fair` | list: the clients with waiting jobs in `{stream}`, next first | the same |
| `{stream}:fair:{client}` | list: that client's waiting ids, oldest first | the same |
| `whisper:tickets` | hash "{stream} {entry}" → the id a worker took for it (fair) | worker |
| channel `whisper:changes` | a changed record (msgpack) | worker publishes; API nodes listen |
| channel `whisper:cancels` | a task id | API node publishes; workers listen |
"""

from __future__ import annotations

__all__ = ["FAIR_LINES", "GROUP", "PICK", "RESERVE", "SUBMIT", "TAKE", "WITHDRAW", "Keys"]

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
        # One client's share and the fair order (QUEUE_POLICY, app.backends.fairness).
        self.client_of = f"{prefix}:fair:client_of"
        self.waiting_by_client = f"{prefix}:fair:waiting"
        self.tickets = f"{prefix}:tickets"

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

    @staticmethod
    def ring(stream: str) -> str:
        """The clients with jobs waiting in `stream`, whose turn is next first."""
        return f"{stream}:fair"

    @staticmethod
    def line(stream: str, client: str) -> str:
        """One client's jobs waiting in `stream`, oldest first."""
        return f"{stream}:fair:{client}"

    @staticmethod
    def ticket(stream: str, entry_id: str) -> str:
        """The field of one stream entry in `tickets`."""
        return f"{stream} {entry_id}"

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

# KEYS: waiting, places, waiting_bytes, sequence, job, audio, stream,
# waiting_by_client, client_of, ring, line. ARGV: token, task id, record, upload, max_bytes,
# client, max_per_client (0 = no bound), stream name.
SUBMIT = """
local waiting = redis.call('ZCARD', KEYS[1])
local held = tonumber(redis.call('GET', KEYS[3]) or '0')
local size = string.len(ARGV[4])
if waiting > 0 and held + size > tonumber(ARGV[5]) then return 'bytes' end
-- one client's share: at most max_per_client waiting jobs
local of_client = tonumber(redis.call('HGET', KEYS[8], ARGV[6]) or '0')
if tonumber(ARGV[7]) > 0 and of_client >= tonumber(ARGV[7]) then return 'client' end
-- end of one client's share
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SET', KEYS[5], ARGV[3])
redis.call('SET', KEYS[6], ARGV[4])
redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[4]), ARGV[2])
redis.call('INCRBY', KEYS[3], size)
redis.call('XADD', KEYS[7], '*', 'id', ARGV[2])
-- the fair order: the job joins its client's line, a client new to the stream the ring's end
if redis.call('RPUSH', KEYS[11], ARGV[2]) == 1 then redis.call('RPUSH', KEYS[10], ARGV[6]) end
redis.call('HSET', KEYS[9], ARGV[2], ARGV[8] .. ' ' .. ARGV[6])
redis.call('HINCRBY', KEYS[8], ARGV[6], 1)
-- end of the fair order
return 'ok'
"""

# A waiting job leaves its client's line (taken or withdrawn): a Lua function the scripts
# below define first. The line's and ring's names come from the job's "{stream} {client}"
# (not declared as KEYS: this works on one Redis, not across a Redis Cluster's slots).
# A client whose line is empty leaves the ring, so the ring holds only clients with jobs.
_LEAVE_FAIR_LINE = """
local function leave_fair_line(client_of, waiting_by_client, task)
  local where = redis.call('HGET', client_of, task)
  if not where then return end
  redis.call('HDEL', client_of, task)
  local stream, client = string.match(where, '^(%S+) (.*)$')
  local line = stream .. ':fair:' .. client
  redis.call('LREM', line, 1, task)
  if redis.call('LLEN', line) == 0 then redis.call('LREM', stream .. ':fair', 0, client) end
  if redis.call('HINCRBY', waiting_by_client, client, -1) <= 0 then
    redis.call('HDEL', waiting_by_client, client)
  end
end
"""

# A worker starts a job. KEYS: waiting, waiting_bytes, job, audio, running, attempts, cancel,
# client_of, waiting_by_client. ARGV: task id, worker name. Returns {record, upload,
# attempts, cancel reason} or {} when the record is gone or final (cancelled or deleted
# while it waited).
TAKE = (
    _LEAVE_FAIR_LINE
    + """
local record = redis.call('GET', KEYS[3])
if not record then
  leave_fair_line(KEYS[8], KEYS[9], ARGV[1])
  return {}
end
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('DECRBY', KEYS[2], redis.call('STRLEN', KEYS[4]))
  leave_fair_line(KEYS[8], KEYS[9], ARGV[1])
end
local upload = redis.call('GET', KEYS[4])
if not upload then return {} end
redis.call('HSET', KEYS[5], ARGV[1], ARGV[2])
local attempts = redis.call('HINCRBY', KEYS[6], ARGV[1], 1)
local reason = redis.call('GET', KEYS[7]) or ''
return {record, upload, attempts, reason}
"""
)

# An API node takes a waiting job out of the queue (cancel, delete).
# KEYS: waiting, waiting_bytes, job, audio, client_of, waiting_by_client.
# ARGV: task id, failed record, ttl_s. Returns 1 when the job was waiting (now failed), 0 otherwise.
WITHDRAW = (
    _LEAVE_FAIR_LINE
    + """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
leave_fair_line(KEYS[5], KEYS[6], ARGV[1])
redis.call('DECRBY', KEYS[2], redis.call('STRLEN', KEYS[4]))
redis.call('DEL', KEYS[4])
redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[3])
return 1
"""
)

# QUEUE_POLICY=fair: which job a stream entry a worker read stands for. Entries are tickets,
# one per job queued in the stream; the job is the next client's turn, chosen here, or
# `wanted` (a batch companion of any client) while it still waits. The choice is kept in
# `tickets` so a worker that takes the entry over runs the same job.
# KEYS: tickets, client_of, ring. ARGV: ticket, stream, wanted ('' = whose turn it is).
# Returns the task id; '' when no job waits (its job was withdrawn: ack the entry);
# '~' when `wanted` no longer waits (keep the entry for the next turn).
PICK = """
local mapped = redis.call('HGET', KEYS[1], ARGV[1])
if mapped then return mapped end
local task
if ARGV[3] ~= '' then
  local where = redis.call('HGET', KEYS[2], ARGV[3])
  if not where then return '~' end
  local stream, client = string.match(where, '^(%S+) (.*)$')
  local line = stream .. ':fair:' .. client
  if redis.call('LREM', line, 1, ARGV[3]) == 0 then return '~' end
  if redis.call('LLEN', line) == 0 then redis.call('LREM', stream .. ':fair', 0, client) end
  task = ARGV[3]
else
  local client = redis.call('LPOP', KEYS[3])
  if not client then return '' end
  local line = ARGV[2] .. ':fair:' .. client
  task = redis.call('LPOP', line)
  if not task then return '' end
  -- served: the client goes to the ring's end while it has jobs left
  if redis.call('LLEN', line) > 0 then redis.call('RPUSH', KEYS[3], client) end
end
redis.call('HSET', KEYS[1], ARGV[1], task)
return task
"""

# Each client's line in the ring's order, for positions. KEYS: ring. ARGV: stream.
FAIR_LINES = """
local lines = {}
for i, client in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  lines[i] = redis.call('LRANGE', ARGV[1] .. ':fair:' .. client, 0, -1)
end
return lines
"""
