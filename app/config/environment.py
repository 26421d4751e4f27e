"""Settings from the environment, validated with msgspec.

A bad value raises `SettingsError` whose message is one line naming the variable,
the value and what is allowed (`app/config/allowed.py`); `whisper-api` prints it
and exits non-zero.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from app.config.allowed import MIN_API_KEY_CHARS, MODEL_FIELDS, allowed
from app.config.settings import SECRET_FIELDS, Settings, SettingsError, log_format_style
from app.config.typos import likely_typos
from app.transcription.catalogue import canonical_model_name

__all__ = ["ENV_ALIASES", "load_settings", "parse_rate_limit"]

# The seed's code read these names where its README documented others.
ENV_ALIASES: dict[str, str] = {
    "LOG_ROTATION": "LOG_ROTATION_WHEN",
    "AUTHORIZED_MAILS": "LOG_AUTHORIZED_MAILS",
}

_LIST_FIELDS = frozenset(
    {"log_authorized_mails", "trusted_proxies", "api_keys", "cors_allow_origins", "redis_sentinels"}
)
_OPTIONAL_FIELDS = frozenset(
    {
        "max_model",
        "live_model",
        "live_final_model",
        "model_dir",
        "web_dir",
        "api_keys_file",
        "rate_limit",
        "max_uploads_in_flight_per_client",
        "max_queued_per_client",
        "log_level_console",
        "log_level_file",
        "speaker_model",
    }
)
# Lists of items that never contain blanks: commas or whitespace separate them.
_BLANK_SEPARATED_FIELDS = frozenset(
    {"log_authorized_mails", "trusted_proxies", "cors_allow_origins", "redis_sentinels"}
)
# Environment variables the service reads besides its settings (the client, the console).
_OTHER_KNOWN_VARIABLES = frozenset({"WHISPER_API_URL", "WHISPER_API_KEY", "NO_COLOR"})
_RATE_LIMIT_RE = re.compile(r"^\s*([1-9][0-9]*)\s*/\s*(second|minute|hour|day)s?\s*$", re.I)
_ORIGIN_RE = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+$")
_UPPER_CASE_FIELDS = frozenset(
    {"log_level", "log_level_console", "log_level_file", "log_rotation_when"}
)
_LIST_SEPARATOR_RE = re.compile(r"[,\s]+")
_LOWER_CASE_FIELDS = frozenset(
    {"batched_inference", "encoder_context", "queue_backend", "api_node_live"}
)
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


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
    if field.name in MODEL_FIELDS:
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
    if name == "redis_sentinels":
        return tuple(_checked_host_port(address) for address in items)
    return tuple(items)


def _checked_host_port(address: str) -> str:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(address)
    return address


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
        secret = field is not None and field.name in SECRET_FIELDS
        shown = "<hidden>" if secret else repr(environ[variable])
        raise SettingsError(
            f"{variable}={shown} is not a setting: did you mean {meant}? "
            "(rename or unset the variable)"
        )


def _bad_value(field: msgspec.structs.FieldInfo, raw: str) -> SettingsError:
    shown = "<hidden>" if field.name in SECRET_FIELDS else repr(raw)
    return SettingsError(f"{field.name.upper()}={shown} is not allowed: expected {allowed(field)}")


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
