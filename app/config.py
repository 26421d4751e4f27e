"""Settings from the environment, validated with msgspec.

Every variable of the seed keeps its name and default. A bad value raises
`SettingsError` whose message is one line naming the variable, the value and
what is allowed; `whisper-api` prints it and exits non-zero.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from app.transcription.catalogue import MODEL_NAMES, canonical_model_name

__all__ = ["ENV_ALIASES", "Settings", "SettingsError", "load_settings"]

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
RotationWhen = Literal["S", "M", "H", "D", "MIDNIGHT", "W0", "W1", "W2", "W3", "W4", "W5", "W6"]


def _default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "whisper-api")


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
    web_dir: str | None = None
    cpu_threads: NonNegativeInt = 0
    batch_size: PositiveInt = 4
    batched_inference: Literal["auto", "on", "off"] = "auto"
    shutdown_grace_s: NonNegativeFloat = 30.0

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

_MODEL_FIELDS = frozenset({"max_model", "cpu_fallback_model"})
_UPPER_CASE_FIELDS = frozenset({"log_level", "log_rotation_when"})
_LOWER_CASE_FIELDS = frozenset({"batched_inference"})
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
        "log_rotation_backup_count": "an integer of at least 0",
        "unload_model_after_s": "a number of seconds of at least 0, or empty for never",
        "delete_results_after_m": "a number of minutes greater than 0 (fractions allowed)",
        "run_result_expiry_check_m": "a number of minutes of at least 0 (0 = check on access)",
        "shutdown_grace_s": "a number of seconds of at least 0",
        "log_level": "one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
        "log_rotation_when": "one of S, M, H, D, midnight, W0-W6",
        "cpu_threads": "an integer of at least 0 (0 = every core)",
        "batch_size": "an integer of at least 1 (1 = no batching)",
        "batched_inference": "one of auto, on, off",
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
    if field.name == "log_authorized_mails":
        return tuple(mail.strip().lower() for mail in value.split(",") if mail.strip())
    if field.name in _UPPER_CASE_FIELDS:
        value = value.upper()
    if field.name in _LOWER_CASE_FIELDS:
        value = value.lower()
    try:
        return msgspec.convert(value, type=field.type, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(raw) from exc


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
    env = _environment_with_aliases(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    for field in msgspec.structs.fields(Settings):
        variable = field.name.upper()
        if variable not in env:
            continue
        raw = env[variable]
        if raw.strip() == "" and field.name in {"max_model", "model_dir", "web_dir"}:
            continue
        try:
            values[field.name] = _convert(field, raw)
        except ValueError:
            raise SettingsError(
                f"{variable}={raw!r} is not allowed: expected {_allowed(field)}"
            ) from None
    values.update(overrides)
    try:
        return msgspec.convert(values, type=Settings)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid settings: {exc}") from None
