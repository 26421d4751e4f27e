"""Settings from the environment, validated with msgspec.

Every variable of the seed keeps its name and default. A bad value raises
`SettingsError` whose message is one line naming the variable, the value and
what is allowed; `whisper-api` prints it and exits non-zero.

One Struct lists every setting beside the one-line "what is allowed" text and the
parser that enforces it, so none can drift apart.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from app.config_typos import likely_typos
from app.transcription.catalogue import MODEL_NAMES, canonical_model_name

__all__ = [
    "ENV_ALIASES",
    "RATE_LIMIT_UNITS",
    "Settings",
    "SettingsError",
    "load_settings",
    "parse_rate_limit",
]

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
    web_dir: str | None = None
    cpu_threads: NonNegativeInt = 0
    # Model replicas sharing those cores and one copy of the weights (0 = auto).
    cpu_replicas: NonNegativeInt = 0
    batch_size: PositiveInt = 4
    batched_inference: Literal["auto", "on", "off"] = "auto"
    # Encode windows shorter than 30 s on their own length (encoder_context.py).
    encoder_context: Literal["adaptive", "full"] = "adaptive"
    shutdown_grace_s: NonNegativeFloat = 30.0
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
    # A running job whose worker sent no heartbeat for this long is taken over by another.
    job_claim_timeout_s: PositiveFloat = 60.0
    job_max_attempts: PositiveInt = 2
    # An ONNX speaker model for speaker labels instead of the bundled d-vector
    # (app/transcription/speakers/embedders.py lists the supported inputs).
    speaker_model: str | None = None
    # -- live transcription (/v1/realtime); 0 sessions switches it off
    max_live_sessions: NonNegativeInt = msgspec.field(default_factory=_default_live_sessions)
    live_model: str | None = None
    live_cpu_threads: NonNegativeInt = 0
    live_max_session_s: PositiveFloat = 3600.0
    live_idle_timeout_s: PositiveFloat = 60.0
    # The live model loads with the first session and is unloaded this long after the
    # last pass, so an idle server holds only the batch model.
    live_unload_after_s: NonNegativeFloat = 300.0

    def __repr__(self) -> str:
        """Settings may end up in a traceback or a debugger: never show the API keys."""
        shown = ", ".join(
            f"{name}={'<hidden>' if name in _SECRET_FIELDS else getattr(self, name)!r}"
            for name in self.__struct_fields__
        )
        return f"Settings({shown})"

    @property
    def log_format_style(self) -> LogFormatStyle:
        """Whether LOG_FORMAT uses `%(name)s` fields or the seed README's `{name}` fields."""
        return log_format_style(self.log_format)

    @property
    def log_path(self) -> Path | None:
        """The rotating log file, or None when file logging is switched off."""
        if not self.log_file:
            return None
        return Path(self.log_dir) / self.log_file


class SettingsError(ValueError):
    """A setting has a value the service cannot run with."""


# The seed's code read these names where its README documented others.
ENV_ALIASES: dict[str, str] = {
    "LOG_ROTATION": "LOG_ROTATION_WHEN",
    "AUTHORIZED_MAILS": "LOG_AUTHORIZED_MAILS",
}

_MODEL_FIELDS = frozenset({"max_model", "cpu_fallback_model", "live_model"})
_LIST_FIELDS = frozenset(
    {"log_authorized_mails", "trusted_proxies", "api_keys", "cors_allow_origins"}
)
_OPTIONAL_FIELDS = frozenset(
    {
        "max_model",
        "live_model",
        "model_dir",
        "web_dir",
        "api_keys_file",
        "rate_limit",
        "log_level_console",
        "log_level_file",
        "speaker_model",
    }
)
# Lists of items that never contain blanks: commas or whitespace separate them.
_BLANK_SEPARATED_FIELDS = frozenset(
    {"log_authorized_mails", "trusted_proxies", "cors_allow_origins"}
)
# Environment variables the service reads besides its settings (the client, the console).
_OTHER_KNOWN_VARIABLES = frozenset({"WHISPER_API_URL", "WHISPER_API_KEY", "NO_COLOR"})
# Values never echoed in an error message.
_SECRET_FIELDS = frozenset({"api_keys"})
MIN_API_KEY_CHARS = 16
RATE_LIMIT_UNITS = ("second", "minute", "hour", "day")
_RATE_LIMIT_RE = re.compile(r"^\s*([1-9][0-9]*)\s*/\s*(second|minute|hour|day)s?\s*$", re.I)
_ORIGIN_RE = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+$")
_UPPER_CASE_FIELDS = frozenset(
    {"log_level", "log_level_console", "log_level_file", "log_rotation_when"}
)
_LIST_SEPARATOR_RE = re.compile(r"[,\s]+")
_LOWER_CASE_FIELDS = frozenset({"batched_inference", "encoder_context", "queue_backend"})
# Never shown by repr: the keys, and a Redis URL that may carry a password.
_SECRET_FIELDS = frozenset({"api_keys", "redis_url"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _allowed(field: msgspec.structs.FieldInfo) -> str:
    """Say in words what a field accepts, for the one-line error."""
    name = field.name
    if name in _MODEL_FIELDS:
        return "one of " + ", ".join(MODEL_NAMES) + " (or turbo)"
    text = {
        "port": "an integer from 1 to 65535",
        "max_task_queue_size": "an integer of at least 1",
        "log_rotation_interval": "an integer of at least 1",
        "max_upload_mb": "an integer of at least 1",
        "max_queued_mb": "an integer of at least 1 (megabytes of uploads held by waiting jobs)",
        "log_rotation_backup_count": "an integer of at least 0",
        "unload_model_after_s": "a number of seconds of at least 0, or empty for never",
        "delete_results_after_m": "a number of minutes greater than 0 (fractions allowed)",
        "run_result_expiry_check_m": "a number of minutes of at least 0 (0 = check on access)",
        "shutdown_grace_s": "a number of seconds of at least 0",
        "max_uploads_in_flight": "an integer of at least 1 (uploads whose bodies arrive at once)",
        "upload_timeout_s": "a number of seconds greater than 0 (time to send one upload)",
        "log_level": "one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
        "log_level_console": "one of DEBUG, INFO, WARNING, ERROR, CRITICAL, or empty for LOG_LEVEL",
        "log_level_file": "one of DEBUG, INFO, WARNING, ERROR, CRITICAL, or empty for LOG_LEVEL",
        "log_format": "a logging format with %(name)s fields, e.g. "
        "'[%(asctime)s] [%(levelname)s] %(message)s', or with {name} fields, e.g. "
        "'[{asctime}] [{levelname}] {message}'",
        "log_rotation_when": "one of S, M, H, D, midnight, W0-W6",
        "cpu_threads": "an integer of at least 0 (0 = every core)",
        "cpu_replicas": "an integer of at least 0 (0 = auto: one per core up to 3 cores, "
        "one per two cores beyond; never more than BATCH_SIZE)",
        "batch_size": "an integer of at least 1 (1 = no batching)",
        "batched_inference": "one of auto, on, off",
        "encoder_context": "one of adaptive, full",
        "trusted_proxies": "comma-separated IP addresses or networks (CIDR), e.g. "
        "127.0.0.1,10.0.0.0/8",
        "api_keys": f"comma-separated keys of at least {MIN_API_KEY_CHARS} characters "
        "without spaces",
        "api_keys_file": "a readable file with one API key per line "
        f"(at least {MIN_API_KEY_CHARS} characters each; # starts a comment)",
        "cors_allow_origins": "comma-separated origins such as https://app.example.org "
        "(scheme://host[:port], no path), or *",
        "rate_limit": "requests per unit such as 60/minute (units: "
        + ", ".join(RATE_LIMIT_UNITS)
        + "), or empty for none",
        "max_audio_duration_s": "a number of seconds greater than 0",
        "job_timeout_min_s": "a number of seconds greater than 0",
        "job_timeout_factor": "a number of at least 0 (seconds per second of audio)",
        "max_live_sessions": "an integer of at least 0 (0 = no live transcription)",
        "live_cpu_threads": "an integer of at least 0 (0 = half the cores)",
        "live_max_session_s": "a number of seconds greater than 0",
        "live_idle_timeout_s": "a number of seconds greater than 0",
        "live_unload_after_s": "a number of seconds of at least 0",
    }.get(name)
    if text is not None:
        return text
    if field.type is bool:
        return "1, 0, true or false"
    return "a string"


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(raw)


def _convert(field: msgspec.structs.FieldInfo, raw: str) -> Any:
    """Turn one raw environment string into the field's type, or raise ValueError."""
    value = raw.strip()
    if field.name in _MODEL_FIELDS:
        return canonical_model_name(value)
    if field.type is bool:
        return _parse_bool(value)
    if field.name == "unload_model_after_s" and value == "":
        return None
    if field.name in _LIST_FIELDS:
        separator = _LIST_SEPARATOR_RE if field.name in _BLANK_SEPARATED_FIELDS else ","
        return _convert_list(
            field.name, [item.strip() for item in re.split(separator, value) if item.strip()]
        )
    if field.name == "log_format":
        return _checked_log_format(raw)
    if field.name in _UPPER_CASE_FIELDS:
        value = value.upper()
    if field.name in _LOWER_CASE_FIELDS:
        value = value.lower()
    try:
        return msgspec.convert(value, type=field.type, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(raw) from exc


def _convert_list(name: str, items: list[str]) -> tuple[str, ...]:
    """Validate and normalise the items of a comma-separated setting."""
    if name == "log_authorized_mails":
        return tuple(mail.lower() for mail in items)
    if name == "trusted_proxies":
        # ip_network accepts a bare address as a /32 (/128) network.
        return tuple(str(ipaddress.ip_network(item, strict=False)) for item in items)
    if name == "api_keys":
        return tuple(_checked_api_key(key) for key in items)
    if name == "cors_allow_origins":
        return tuple(_checked_origin(origin) for origin in items)
    return tuple(items)


def _checked_log_format(log_format: str) -> str:
    """A format `logging` accepts in its style, with the event's place in it."""
    style = log_format_style(log_format)
    message_field = "%(message)" if style == "%" else "{message"
    if message_field not in log_format:
        raise ValueError(log_format)
    logging.Formatter(log_format, style=style, validate=True)  # ValueError if malformed
    return log_format


def _checked_api_key(key: str) -> str:
    if len(key) < MIN_API_KEY_CHARS or any(ch.isspace() for ch in key):
        raise ValueError("api key")
    return key


def _checked_origin(origin: str) -> str:
    origin = origin.rstrip("/")
    if origin != "*" and not _ORIGIN_RE.match(origin):
        raise ValueError(origin)
    return origin


def parse_rate_limit(text: str) -> tuple[str, int]:
    """`60/minute` -> ("minute", 60); raises ValueError for anything else."""
    match = _RATE_LIMIT_RE.match(text)
    if match is None:
        raise ValueError(text)
    return match.group(2).lower(), int(match.group(1))


def _read_api_keys_file(path: str) -> tuple[str, ...]:
    """One key per line; blank lines and `#` comments are ignored; at least one key."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    keys = tuple(
        _checked_api_key(line.strip())
        for line in lines
        if line.strip() and not line.startswith("#")
    )
    if not keys:
        raise ValueError(path)
    return keys


def _environment_with_aliases(environ: Mapping[str, str]) -> dict[str, str]:
    merged = dict(environ)
    for alias, name in ENV_ALIASES.items():
        if alias in environ and name not in environ:
            merged[name] = environ[alias]
    return merged


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build `Settings` from an environment mapping (default: os.environ).

    Keyword overrides win over the environment; tests use them to build apps
    with explicit settings.
    """
    raw_environ = os.environ if environ is None else environ
    _refuse_typos(raw_environ)
    env = _environment_with_aliases(raw_environ)
    values: dict[str, Any] = {}
    for field in msgspec.structs.fields(Settings):
        variable = field.name.upper()
        if variable not in env:
            continue
        raw = env[variable]
        if raw.strip() == "" and field.name in _OPTIONAL_FIELDS:
            continue
        try:
            values[field.name] = _convert(field, raw)
        except ValueError:
            raise _bad_value(field, raw) from None
    values.update(overrides)
    _check_cross_field(values)
    try:
        return msgspec.convert(values, type=Settings)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid settings: {exc}") from None


def _refuse_typos(environ: Mapping[str, str]) -> None:
    """Stop at a variable that is a near miss of a setting's name (MAX_MODLE for MAX_MODEL)."""
    fields = {field.name.upper(): field for field in msgspec.structs.fields(Settings)}
    known = {*fields, *ENV_ALIASES, *_OTHER_KNOWN_VARIABLES}
    for variable, meant in likely_typos(environ, known):
        field = fields.get(ENV_ALIASES.get(meant, meant))
        secret = field is not None and field.name in _SECRET_FIELDS
        shown = "<hidden>" if secret else repr(environ[variable])
        raise SettingsError(
            f"{variable}={shown} is not a setting: did you mean {meant}? "
            "(rename or unset the variable)"
        )


def _bad_value(field: msgspec.structs.FieldInfo, raw: str) -> SettingsError:
    shown = "<hidden>" if field.name in _SECRET_FIELDS else repr(raw)
    return SettingsError(f"{field.name.upper()}={shown} is not allowed: expected {_allowed(field)}")


def _check_cross_field(values: dict[str, Any]) -> None:
    """Checks that need the final values: the rate limit's form, the keys file's keys."""
    fields = {field.name: field for field in msgspec.structs.fields(Settings)}
    rate_limit = values.get("rate_limit")
    if rate_limit:
        try:
            parse_rate_limit(rate_limit)
        except ValueError:
            raise _bad_value(fields["rate_limit"], rate_limit) from None
    keys_file = values.get("api_keys_file")
    if keys_file:
        try:
            file_keys = _read_api_keys_file(keys_file)
        except (OSError, UnicodeDecodeError, ValueError):
            raise _bad_value(fields["api_keys_file"], keys_file) from None
        values["api_keys"] = tuple(dict.fromkeys((*values.get("api_keys", ()), *file_keys)))
