"""Privacy redaction of log events: pure functions, no handlers, no frameworks.

Content (transcripts, prompts, file names, segments, words) is never logged,
whatever the mode: such keys are replaced by their length. Credentials are
dropped. In privacy mode task ids and UUIDs are shortened to ``abcd…wxyz``,
client addresses, e-mail addresses and query-string values are removed.

Every text pattern runs in linear time on any input, so a request with a
100 KB path cannot stall the server while its access line is scrubbed:

* an unbounded repeat is possessive (``++``): it never gives characters back,
  so a failed match costs no backtracking;
* a pattern that starts with an unbounded repeat only starts where the run of
  its characters starts (a negative lookbehind), so no run is rescanned from
  each of its positions;
* every other repeat has a small fixed bound (UUIDs, IP addresses).

`tests/observability/logging/test_redaction.py` checks these rules on the compiled patterns
and times inputs of 10x the size against each other.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from structlog.typing import EventDict, WrappedLogger

__all__ = [
    "ELLIPSIS",
    "SCRUB_MEMO_ATTRIBUTE",
    "TEXT_PATTERNS",
    "Redactor",
    "scrub_text",
    "short_id",
]

ELLIPSIS = "\u2026"

# A dict put on a LogRecord by the formatter: text already scrubbed for this
# record, so that a second handler (console and file) does not scrub it again.
SCRUB_MEMO_ATTRIBUTE = "_whisper_api_scrubbed"

# Keys whose values carry user content: never logged, replaced by a length.
_CONTENT_KEYS = frozenset(
    {
        "text",
        "transcript",
        "transcription",
        "prompt",
        "initial_prompt",
        "hotwords",
        "filename",
        "file_name",
        "segments",
        "words",
        "content",
        "body",
    }
)
# Credentials: never logged, whatever the mode.
_SECRET_KEYS = frozenset(
    {
        "api_key",
        "apikey",
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "password",
        "token",
        "access_token",
        "secret",
    }
)
# Personal data about the client: dropped in privacy mode.
_PERSONAL_KEYS = frozenset(
    {
        "client",
        "client_addr",
        "client_ip",
        "remote_addr",
        "remote_ip",
        "ip",
        "peer",
        "email",
        "x_email",
        "mail",
        "user_email",
        "headers",
        "x_forwarded_for",
        "forwarded",
    }
)
# Keys holding task ids: shortened in privacy mode.
_TASK_ID_KEYS = frozenset({"task_id", "task_ids", "job_id"})
# Keys whose values are structured tracebacks: their strings are scrubbed, but
# their keys (a frame's "filename") are not content.
_TRACEBACK_KEYS = frozenset({"exception", "stack"})
# The ProcessorFormatter's bookkeeping keys, removed before rendering.
_META_KEYS = ("_record", "_from_structlog")
_MAX_DEPTH = 6

_EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]++@[A-Za-z0-9-]++(?:\.[A-Za-z0-9-]++)++")
_QUERY_RE = re.compile(r"(?<=[\w/.\-%])\?([^\s\"'<>#]++)")
_QUERY_SEPARATOR_RE = re.compile(r"([&;])")
_UUID_RE = re.compile(
    r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{32}|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}"
    r"-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})(?![0-9A-Fa-f])"
)
_IPV6_CANDIDATE_RE = re.compile(
    r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}(?![\w:])"
)
_IPV4_RE = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)")

# Every pattern applied to free text, for the linear-time checks in the tests.
TEXT_PATTERNS: tuple[re.Pattern[str], ...] = (
    _EMAIL_RE,
    _QUERY_RE,
    _QUERY_SEPARATOR_RE,
    _UUID_RE,
    _IPV6_CANDIDATE_RE,
    _IPV4_RE,
)


def short_id(task_id: str) -> str:
    """Shorten an id to ``abcd…wxyz``; ids of 8 chars or fewer keep only their last 4."""
    if len(task_id) > 8:
        return f"{task_id[:4]}{ELLIPSIS}{task_id[-4:]}"
    if len(task_id) > 4:
        return f"{ELLIPSIS}{task_id[-4:]}"
    return ELLIPSIS


def _mask_query(match: re.Match[str]) -> str:
    """``?a=1&b=2`` -> ``?a=…&b=…``: the keys stay (they name options), values go."""
    query = match.group(1)
    if "=" not in query:
        return match.group(0)
    masked = [
        part
        if part in {"&", ";"}
        else (part.split("=", 1)[0] + "=" + ELLIPSIS if "=" in part else ELLIPSIS)
        for part in _QUERY_SEPARATOR_RE.split(query)
    ]
    return "?" + "".join(masked)


def _replace_ip(match: re.Match[str]) -> str:
    candidate = match.group(0)
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return candidate
    if address.is_loopback or address.is_unspecified:
        return candidate  # the server's own listen address, not a client
    return "<ip>"


def scrub_text(text: str) -> str:
    """Remove personal data from free text: query values, e-mails, ids, IPs (linear time)."""
    # Query values first: a value is masked whole, whatever it contains.
    if "?" in text:
        text = _QUERY_RE.sub(_mask_query, text)
    if "@" in text:
        text = _EMAIL_RE.sub("<email>", text)
    text = _UUID_RE.sub(lambda m: short_id(m.group(0)), text)
    if ":" in text:
        text = _IPV6_CANDIDATE_RE.sub(_replace_ip, text)
    if "." in text:
        text = _IPV4_RE.sub(_replace_ip, text)
    return text


def _normalise_key(key: object) -> str:
    return str(key).lower().replace("-", "_")


class Redactor:
    """The privacy processor (structlog): applied to every event, ours and foreign ones.

    It also removes the ProcessorFormatter's bookkeeping keys. When the event's
    LogRecord carries a memo dict under `SCRUB_MEMO_ATTRIBUTE`, text scrubbed for
    one handler is reused by the next, so each record's text is scrubbed once.
    """

    def __init__(self, *, privacy_mode: bool) -> None:
        self.privacy_mode = privacy_mode

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        """Return a cleaned copy of `event_dict`."""
        record = event_dict.get("_record")
        memo = getattr(record, SCRUB_MEMO_ATTRIBUTE, None)
        scrubber = _Scrubber(
            privacy_mode=self.privacy_mode, memo=memo if isinstance(memo, dict) else {}
        )
        event = {key: value for key, value in event_dict.items() if key not in _META_KEYS}
        return scrubber.clean_mapping(event, depth=0)


class _Scrubber:
    """One event's redaction, with the memo of text already scrubbed for its record."""

    def __init__(self, *, privacy_mode: bool, memo: dict[str, str]) -> None:
        self.privacy_mode = privacy_mode
        self.memo = memo

    def scrub(self, text: str) -> str:
        scrubbed = self.memo.get(text)
        if scrubbed is None:
            scrubbed = self.memo[text] = scrub_text(text)
        return scrubbed

    def clean_mapping(self, mapping: Mapping[Any, Any], *, depth: int) -> dict[Any, Any]:
        cleaned: dict[Any, Any] = {}
        for key, value in mapping.items():
            name = _normalise_key(key)
            if name in _CONTENT_KEYS:
                cleaned.update(_content_size(key, value))
                continue
            if name in _SECRET_KEYS:
                continue
            if self.privacy_mode:
                if name in _PERSONAL_KEYS:
                    continue
                if name in _TASK_ID_KEYS:
                    cleaned[key] = _shorten_ids(value)
                    continue
            keys = name not in _TRACEBACK_KEYS
            cleaned[key] = self.clean_value(value, depth=depth + 1, keys=keys)
        return cleaned

    def clean_value(self, value: Any, *, depth: int, keys: bool) -> Any:
        if isinstance(value, str):
            return self.scrub(value) if self.privacy_mode else value
        if value is None or isinstance(value, bool | int | float):
            return value
        if depth > _MAX_DEPTH:
            return "<nested>"
        if isinstance(value, Mapping):
            if keys:
                return self.clean_mapping(value, depth=depth)
            return {k: self.clean_value(v, depth=depth + 1, keys=False) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.clean_value(item, depth=depth + 1, keys=keys) for item in value]
        if not self.privacy_mode:
            return value
        if isinstance(value, uuid.UUID):
            return short_id(value.hex)
        # Any other object renders through str()/repr() later: scrub that text now.
        return self.scrub(str(value))


def _content_size(key: Any, value: Any) -> dict[str, int]:
    """What may be said about content: its size, under ``<key>_chars|_bytes|_count``."""
    if isinstance(value, str):
        return {f"{key}_chars": len(value)}
    if isinstance(value, bytes | bytearray):
        return {f"{key}_bytes": len(value)}
    if isinstance(value, Sequence | Mapping | set | frozenset):
        return {f"{key}_count": len(value)}
    return {}


def _shorten_ids(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, list | tuple | set | frozenset):
        return [_shorten_ids(item) for item in value]
    if isinstance(value, uuid.UUID):
        return short_id(value.hex)
    return short_id(str(value))
