"""The `Settings` struct: every setting the service reads, with its type and default.

Each variable of the seed keeps its name and default. `app/config/environment.py`
builds one from the environment, `app/config/allowed.py` says in words what each
accepts. New settings go here, with a line in `allowed.py` when the type alone
does not say enough.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

import msgspec

__all__ = ["SECRET_FIELDS", "Settings", "SettingsError", "log_format_style"]

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormatStyle = Literal["%", "{"]
RotationWhen = Literal["S", "M", "H", "D", "MIDNIGHT", "W0", "W1", "W2", "W3", "W4", "W5", "W6"]


_PERCENT_FIELD_RE = re.compile(r"%\(\w+\)")


def log_format_style(log_format: str) -> LogFormatStyle:
    """`%` when the format has a `%(name)` field, else `{` (`{asctime}`, `{message}`)."""
    return "%" if _PERCENT_FIELD_RE.search(log_format) else "{"


def _default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "whisper-api")


def _default_live_sessions() -> int:
    """One live stream per two cores keeps each at real-time pace (1 on a 2-core machine)."""
    return max(1, (os.cpu_count() or 2) // 2)


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the service can be told; built once and passed to `create_app`."""

    port: Port = 3001
    listen: str = "127.0.0.1"
    load_model_on_startup: bool = True
    develop_mode: bool = False
    unload_model_after_s: NonNegativeFloat | None = None
    delete_results_after_m: PositiveFloat = 60.0
    refresh_expiration_time_on_usage: bool = True
    run_result_expiry_check_m: NonNegativeFloat = 5.0
    use_gpu_if_available: bool = True
    max_model: str | None = None
    max_task_queue_size: PositiveInt = 128
    cpu_fallback_model: str = "medium"
    log_dir: str = "data/"
    log_file: str = "whisper_api.log"
    log_level: LogLevel = "INFO"
    # Per handler; unset = LOG_LEVEL.
    log_level_console: LogLevel | None = None
    log_level_file: LogLevel | None = None
    log_format: str = "[%(asctime)s] [%(levelname)s] %(message)s"
    log_date_format: str = "%Y-%m-%d %H:%M:%S"
    log_rotation_when: RotationWhen = "H"
    log_rotation_interval: PositiveInt = 2
    log_rotation_backup_count: NonNegativeInt = 48
    log_privacy_mode: bool = True
    log_authorized_mails: tuple[str, ...] = ()
    model_dir: str | None = None
    model_cache_dir: str = msgspec.field(default_factory=_default_cache_dir)
    allow_download: bool = True
    max_upload_mb: PositiveInt = 512
    # Bytes held by waiting jobs (their uploads as sent), across the whole queue.
    max_queued_mb: PositiveInt = 1024
    # Bodies arriving at once, and how long one may take (slow clients hold no queue place).
    max_uploads_in_flight: PositiveInt = 16
    upload_timeout_s: PositiveFloat = 300.0
    # Body pace (docs/SECURITY.md): the longest pause between two reads of a body
    # (nginx's client_body_timeout), and the least average rate once the grace is over
    # (Apache's mod_reqtimeout MinRate). 500 B/s is 4 kbit/s: a phone on GPRS sends 5x that.
    upload_idle_timeout_s: PositiveFloat = 60.0
    upload_min_rate_bps: NonNegativeInt = 500
    upload_rate_grace_s: NonNegativeFloat = 30.0
    # One client (its API key, else its address) against everyone else: unset = a quarter
    # of MAX_UPLOADS_IN_FLIGHT (at least 1), half of MAX_TASK_QUEUE_SIZE (at least 1).
    max_uploads_in_flight_per_client: PositiveInt | None = None
    max_queued_per_client: PositiveInt | None = None
    # `fair`: round-robin across clients with waiting jobs; `fifo`: one line for everybody.
    queue_policy: Literal["fair", "fifo"] = "fair"
    web_dir: str | None = None
    cpu_threads: NonNegativeInt = 0
    # Model replicas sharing those cores and one copy of the weights (0 = auto).
    cpu_replicas: NonNegativeInt = 0
    batch_size: PositiveInt = 4
    batched_inference: Literal["auto", "on", "off"] = "auto"
    # Encode windows shorter than 30 s on their own length (encoder_context.py).
    encoder_context: Literal["adaptive", "full"] = "adaptive"
    shutdown_grace_s: NonNegativeFloat = 30.0
    # SRT/VTT cues to the broadcasters' norms (2 lines of 42 characters, 1-7 s) on /asr,
    # the task API, the page and the CLI; OpenAI's surface keeps its segment cues.
    subtitle_shaping: bool = True
    # -- access control and limits (docs/SECURITY.md)
    trusted_proxies: tuple[str, ...] = ()
    log_allow_localhost: bool = True
    api_keys: tuple[str, ...] = ()
    api_keys_file: str | None = None
    cors_allow_origins: tuple[str, ...] = ()
    rate_limit: str | None = None
    max_audio_duration_s: PositiveFloat = 4 * 3600.0
    job_timeout_min_s: PositiveFloat = 120.0
    job_timeout_factor: NonNegativeFloat = 10.0
    # -- several machines (app/backends/redis_*): `memory` is one process, as always
    queue_backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_password_file: str | None = None
    # Redis Sentinel (host:port, comma-separated): when set, nodes and workers ask the
    # sentinels which server is the primary of REDIS_SENTINEL_MASTER, and follow failovers.
    redis_sentinels: tuple[str, ...] = ()
    redis_sentinel_master: str = "mymaster"
    # A running job whose worker sent no heartbeat for this long is taken over by another.
    job_claim_timeout_s: PositiveFloat = 60.0
    job_max_attempts: PositiveInt = 2
    # A waiting job that no worker takes within this long fails with the reason; its upload
    # leaves Redis.
    job_max_wait_s: PositiveFloat = 3600.0
    # /v1/realtime on an API node (QUEUE_BACKEND=redis): `refuse` it with a clear error, or
    # run it on this node's own live model (`local`: the node then loads LIVE_MODEL).
    api_node_live: Literal["refuse", "local"] = "refuse"
    # An ONNX speaker model for speaker labels instead of the bundled d-vector
    # (app/transcription/speakers/embedders.py lists the supported inputs).
    speaker_model: str | None = None
    # -- live transcription (/v1/realtime); 0 sessions switches it off
    max_live_sessions: NonNegativeInt = msgspec.field(default_factory=_default_live_sessions)
    live_model: str | None = None
    # A model that transcribes each finished turn again: its text is the completed one.
    live_final_model: str | None = None
    live_cpu_threads: NonNegativeInt = 0
    live_max_session_s: PositiveFloat = 3600.0
    live_idle_timeout_s: PositiveFloat = 60.0
    # The live model loads with the first session and is unloaded this long after the
    # last pass, so an idle server holds only the batch model.
    live_unload_after_s: NonNegativeFloat = 300.0

    def __repr__(self) -> str:
        """Settings may end up in a traceback or a debugger: never show the API keys."""
        shown = ", ".join(
            f"{name}={'<hidden>' if name in SECRET_FIELDS else getattr(self, name)!r}"
            for name in self.__struct_fields__
        )
        return f"Settings({shown})"

    @property
    def live_threads(self) -> int:
        """CTranslate2 threads of the live model: LIVE_CPU_THREADS, or half the cores."""
        return self.live_cpu_threads or max(1, (os.cpu_count() or 2) // 2)

    @property
    def batch_threads(self) -> int:
        """The batch model's threads on a CPU: CPU_THREADS, or the cores the live model leaves.

        With live sessions on, the cores are split between the two models so that a
        live pass never queues behind the batch worker for a core (every core without).
        """
        if self.cpu_threads:
            return self.cpu_threads
        cores = os.cpu_count() or 1
        return max(1, cores - self.live_threads) if self.max_live_sessions > 0 else cores

    @property
    def log_format_style(self) -> LogFormatStyle:
        """Whether LOG_FORMAT uses `%(name)s` fields or the seed README's `{name}` fields."""
        return log_format_style(self.log_format)

    @property
    def uploads_in_flight_per_client(self) -> int:
        """MAX_UPLOADS_IN_FLIGHT_PER_CLIENT, or its default: a quarter of the whole, at least 1."""
        if self.max_uploads_in_flight_per_client is not None:
            return self.max_uploads_in_flight_per_client
        return max(1, self.max_uploads_in_flight // 4)

    @property
    def queued_per_client(self) -> int:
        """MAX_QUEUED_PER_CLIENT, or its default: half of MAX_TASK_QUEUE_SIZE, at least 1."""
        if self.max_queued_per_client is not None:
            return self.max_queued_per_client
        return max(1, self.max_task_queue_size // 2)

    @property
    def log_path(self) -> Path | None:
        """The rotating log file, or None when file logging is switched off."""
        if not self.log_file:
            return None
        return Path(self.log_dir) / self.log_file


class SettingsError(ValueError):
    """A setting has a value the service cannot run with."""


# Never shown by repr or in an error: the keys, and a Redis URL that may carry a password.
SECRET_FIELDS = frozenset({"api_keys", "redis_url"})
