"""Multipart uploads parsed in memory, with the size limit enforced while the body streams.

Litestar's own parser spools file parts over 1 MiB into temporary files; audio must
never touch the disk, so upload routes read the body themselves through this module
(the same `multipart` push parser Litestar uses, minus the spooling).
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from litestar import Request
from multipart import (  # type: ignore[import-untyped]
    MultipartSegment,
    ParserError,
    ParserLimitReached,
    PushMultipartParser,
)

from app.service.errors import InvalidInputError, UploadTooLargeError

__all__ = ["FilePart", "MultipartForm", "content_length", "read_multipart"]

MAX_PARTS = 64
MAX_FIELD_BYTES = 64 * 1024
# Text fields that carry audio (OpenAI's known-speaker clips as base64 data URLs): a
# 30 s WAV at 16 kHz is about 1.3 MB in base64. The whole body stays within MAX_UPLOAD_MB.
LARGE_FIELD_BYTES = {
    "known_speaker_references[]": 4 * 1024 * 1024,
    "known_speaker_references": 4 * 1024 * 1024,
}
# The parser's limit on one part header line (Content-Disposition with its names).
MAX_HEADER_BYTES = 4096


@dataclass(slots=True)
class FilePart:
    """One uploaded file, held in memory."""

    filename: str
    content_type: str
    # The buffer the body was read into, not a copy: uploads can be hundreds of MB.
    data: bytes | bytearray


@dataclass(slots=True)
class MultipartForm:
    """The text fields and files of one multipart body."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, FilePart] = field(default_factory=dict)

    def value(self, name: str) -> str | None:
        """The first value of a text field, or None."""
        values = self.fields.get(name)
        return values[0] if values else None

    def file(self, name: str) -> FilePart | None:
        """The file in field `name`, else the only file sent under another name."""
        part = self.files.get(name)
        if part is None and len(self.files) == 1:
            part = next(iter(self.files.values()))
        return part

    def values(self, name: str) -> list[str]:
        """Every value of a repeated text field (e.g. `timestamp_granularities[]`)."""
        return list(self.fields.get(name, ()))


def content_length(request: Request[Any, Any, Any]) -> int | None:
    """The body size the client declared, if it declared a sane one."""
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        return None
    return int(declared)


def _boundary(request: Request[Any, Any, Any]) -> bytes:
    content_type = request.headers.get("content-type", "")
    media_type, _, params = content_type.partition(";")
    if media_type.strip().lower() != "multipart/form-data":
        raise InvalidInputError(
            "send the audio as multipart/form-data with the file in a form field"
        )
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary" and value:
            return value.strip('"').encode("latin-1")
    raise InvalidInputError("the multipart/form-data body has no boundary")


async def read_multipart(
    request: Request[Any, Any, Any],
    *,
    max_bytes: int,
    on_chunk: Callable[[int], None] | None = None,
) -> MultipartForm:
    """Read and parse the whole multipart body in memory, refusing it past `max_bytes`.

    `on_chunk` hears the size of every chunk as it arrives (the body's pace).
    """
    declared = content_length(request)
    if declared is not None and declared > max_bytes:
        raise UploadTooLargeError(max_bytes)
    boundary = _boundary(request)
    form = MultipartForm()
    received = 0
    segment: MultipartSegment | None = None
    buffer = bytearray()
    try:
        with PushMultipartParser(
            boundary, max_segment_count=MAX_PARTS, max_header_size=MAX_HEADER_BYTES
        ) as parser:
            stream = request.stream()
            while not parser.closed:
                chunk = await anext(stream, b"")
                received += len(chunk)
                if on_chunk is not None and chunk:
                    on_chunk(len(chunk))
                if received > max_bytes:
                    raise UploadTooLargeError(max_bytes)
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        segment, buffer = event, bytearray()
                    elif event:
                        buffer.extend(event)
                        is_text = segment is not None and not segment.filename
                        limit = LARGE_FIELD_BYTES.get(
                            segment.name if segment else "", MAX_FIELD_BYTES
                        )
                        if is_text and len(buffer) > limit:
                            raise InvalidInputError("a form field is too long")
                    elif segment is not None:
                        _store_part(form, segment, buffer)
                        segment, buffer = None, bytearray()
    except ParserLimitReached as limit:
        raise InvalidInputError(_limit_message(str(limit))) from None
    except ParserError:
        raise InvalidInputError("the multipart/form-data body is malformed") from None
    return form


def _limit_message(reason: str) -> str:
    """The parser's limit, said for the client (it names only header length, count, parts)."""
    if "header length" in reason:
        return (
            f"a form part's header is too long (a field or file name over {MAX_HEADER_BYTES} bytes)"
        )
    if "header count" in reason:
        return "a form part has too many headers"
    return f"the multipart body has too many parts (at most {MAX_PARTS})"


# Text charsets a form field may declare; anything else (unknown, or a codec that
# is not a text encoding, such as `hex` or `idna`) is a 400 that names it.
FIELD_CHARSETS = frozenset(
    {"utf-8", "utf-8-sig", "ascii", "iso8859-1", "iso8859-15", "cp1252"}
    | {"utf-16", "utf-16-le", "utf-16-be"}
)


def _text_of(name: str, data: bytearray, charset: str | None) -> str:
    """A text field's value in its declared charset (UTF-8 when none)."""
    try:
        codec = codecs.lookup(charset or "utf-8").name
    except LookupError:
        codec = ""
    if codec not in FIELD_CHARSETS:
        shown = (charset or "")[:40]
        raise InvalidInputError(
            f"the form field `{name[:64]}` declares an unsupported charset `{shown}`; "
            "send text fields as UTF-8",
            param=name[:64],
        )
    return data.decode(codec, errors="replace")


def _store_part(form: MultipartForm, segment: MultipartSegment, data: bytearray) -> None:
    if segment.filename is not None:
        form.files.setdefault(
            segment.name,
            FilePart(
                filename=segment.filename,
                content_type=segment.content_type or "application/octet-stream",
                data=data,
            ),
        )
    else:
        text = _text_of(segment.name, data, segment.charset)
        form.fields.setdefault(segment.name, []).append(text)
