"""Where jobs and tasks are kept: this process (`local`) or Redis, shared by a cluster (`redis`).

The service talks to one `TaskBackend` (`base`); `local` implements it over the
in-memory queue and store, `redis.store` keeps everything in Redis so that any
number of API nodes and workers share one queue.
"""
