"""Key names, channels and the atomic scripts that every API node and worker share.

Keys hold task ids (random hex) only, never file names; a client is a hash
(`Job.client`), never a key or an address. Every key has an owner
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
| `whisper:fair:client_of` | hash id → "{stream} {client}" | SUBMIT | TAKE, WITHDRAW, DELETE |
| `whisper:fair:waiting` | hash client → its waiting jobs | SUBMIT | field at 0 |
| `{stream}:fair` | list: clients with waiting jobs, next first | SUBMIT | when empty |
| `{stream}:fair:{client}` | list: its waiting ids, oldest first | SUBMIT | when empty |
| `whisper:tickets` | hash "{stream} {entry}" → the id it stands for | PICK | entry acked |
| channel `whisper:changes` | a changed record (msgpack) | worker, API node | - |
| channel `whisper:cancels` | a task id | API node publishes; workers listen | - |
| channel `whisper:fleet` | a worker's name | worker, when it joins or leaves | - |
"""

from __future__ import annotations

__all__ = [
    "DELETE",
    "FAIR_LINES",
    "GROUP",
    "PICK",
    "RESERVE",
    "SUBMIT",
    "TAKE",
    "WITHDRAW",
    "Keys",
]

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

# KEYS: waiting, places, waiting_bytes, sequence, job, audio, stream, deadlines, entries,
# waiting_by_client, client_of, ring, line. ARGV: token, task id, record, upload, max_bytes,
# wait_ttl_s, wait_deadline_ms, client, max_per_client (0 = no bound), stream name.
# Record and upload expire (JOB_MAX_WAIT_S and a margin) unless a worker takes the
# job; the API nodes fail it with a reason at its deadline, before that.
SUBMIT = """#!lua
local waiting = redis.call('ZCARD', KEYS[1])
local held = tonumber(redis.call('GET', KEYS[3]) or '0')
local size = string.len(ARGV[4])
if waiting > 0 and held + size > tonumber(ARGV[5]) then return 'bytes' end
-- one client's share: at most max_per_client waiting jobs
local of_client = tonumber(redis.call('HGET', KEYS[10], ARGV[8]) or '0')
if tonumber(ARGV[9]) > 0 and of_client >= tonumber(ARGV[9]) then return 'client' end
-- end of one client's share
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SET', KEYS[5], ARGV[3], 'EX', ARGV[6])
redis.call('SET', KEYS[6], ARGV[4], 'EX', ARGV[6])
redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[4]), ARGV[2])
redis.call('INCRBY', KEYS[3], size)
redis.call('ZADD', KEYS[8], ARGV[7], ARGV[2])
local entry = redis.call('XADD', KEYS[7], '*', 'id', ARGV[2])
redis.call('HSET', KEYS[9], ARGV[2], entry)
-- the fair order: the job joins its client's line, a client new to the stream the ring's end
if redis.call('RPUSH', KEYS[13], ARGV[2]) == 1 then redis.call('RPUSH', KEYS[12], ARGV[8]) end
redis.call('HSET', KEYS[11], ARGV[2], ARGV[10] .. ' ' .. ARGV[8])
redis.call('HINCRBY', KEYS[10], ARGV[8], 1)
-- end of the fair order
return 'ok'
"""

# A waiting job leaves its client's line (taken, withdrawn or deleted): a Lua function the
# scripts below define first. The line's and ring's names come from the job's
# "{stream} {client}" (not declared as KEYS: this works on one Redis, not across a Redis
# Cluster's slots). A client whose line is empty leaves the ring, so the ring holds only
# clients with jobs.
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

# A job that leaves the queue before it ran takes its stream entry along, unless a worker
# read that entry already: under QUEUE_POLICY=fair an entry read is the ticket of whatever
# job was that client's turn (maybe running now), and the worker that read it acks and
# deletes it. An entry of a withdrawn job that a worker reads later ends the same way.
_DROP_UNREAD_ENTRY = (
    """
local function drop_unread_entry(entries, stream, task)
  local entry = redis.call('HGET', entries, task)
  redis.call('HDEL', entries, task)
  if not entry then return end
  local read = redis.pcall('XPENDING', stream, '"""
    + GROUP
    + """', entry, entry, 1)
  if type(read) == 'table' and read.err == nil and #read > 0 then return end
  redis.call('XDEL', stream, entry)
end
"""
)

# A worker starts a job. KEYS: waiting, waiting_bytes, job, audio, running, attempts, cancel,
# deadlines, client_of, waiting_by_client. ARGV: task id, worker name, running_ttl_s.
# Returns {record, upload, attempts, cancel reason} or {} when the record is gone or final
# (cancelled, deleted or expired while it waited). While it runs, record and upload live
# as long as the worker's heartbeat renews them (`running_ttl_s`).
TAKE = (
    _LEAVE_FAIR_LINE
    + """
local record = redis.call('GET', KEYS[3])
if not record then
  leave_fair_line(KEYS[9], KEYS[10], ARGV[1])
  return {}
end
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('DECRBY', KEYS[2], redis.call('STRLEN', KEYS[4]))
  leave_fair_line(KEYS[9], KEYS[10], ARGV[1])
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
)

# An API node takes a waiting job out of the queue (cancel, its wait ran out).
# KEYS: waiting, waiting_bytes, job, audio, deadlines, entries, stream, client_of,
# waiting_by_client. ARGV: task id, failed record, ttl_s. Returns 1 when the job was
# waiting (now failed, its upload and unread stream entry gone), 0 otherwise.
WITHDRAW = (
    _LEAVE_FAIR_LINE
    + _DROP_UNREAD_ENTRY
    + """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
leave_fair_line(KEYS[8], KEYS[9], ARGV[1])
redis.call('DECRBY', KEYS[2], redis.call('STRLEN', KEYS[4]))
redis.call('DEL', KEYS[4])
redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[3])
redis.call('ZREM', KEYS[5], ARGV[1])
drop_unread_entry(KEYS[6], KEYS[7], ARGV[1])
return 1
"""
)

# An API node erases a task (its owner deleted it): a waiting job also leaves the
# queue, in the same step. KEYS: waiting, waiting_bytes, job, audio, deadlines,
# entries, stream, client_of, waiting_by_client. ARGV: task id. Returns the record as
# it was, or false.
DELETE = (
    _LEAVE_FAIR_LINE
    + _DROP_UNREAD_ENTRY
    + """
local record = redis.call('GET', KEYS[3])
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('DECRBY', KEYS[2], redis.call('STRLEN', KEYS[4]))
  leave_fair_line(KEYS[8], KEYS[9], ARGV[1])
  drop_unread_entry(KEYS[6], KEYS[7], ARGV[1])
end
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('DEL', KEYS[3], KEYS[4])
return record
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
