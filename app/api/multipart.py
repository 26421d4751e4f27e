"""Multipart uploads parsed in memory, with the size limit enforced while the body streams.

Litestar's own parser spools file parts over 1 MiB into temporary files; audio must
never touch the disk, so upload routes read the body themselves through this module
(the same `multipart` push parser Litestar uses, minus the spooling).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from litestar import Request
from litestar.exceptions import ClientException, HTTPException
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
)
from litestar.status_codes import HTTP_413_REQUEST_ENTITY_TOO_LARGE
from multipart import (  # type: ignore[import-untyped]
    MultipartSegment,
    ParserError,
    ParserLimitReached,
    PushMultipartParser,
)

__all__ = [
    "FilePart",
    "MultipartForm",
    "PayloadTooLargeError",
    "file_schema",
    "multipart_operation",
    "read_multipart",
    "text_schema",
]

MAX_PARTS = 64
MAX_FIELD_BYTES = 64 * 1024
# Text fields that carry audio (OpenAI's known-speaker clips as base64 data URLs): a
# 30 s WAV at 16 kHz is about 1.3 MB in base64. The whole body stays within MAX_UPLOAD_MB.
LARGE_FIELD_BYTES = {
    "known_speaker_references[]": 4 * 1024 * 1024,
    "known_speaker_references": 4 * 1024 * 1024,
}


class PayloadTooLargeError(HTTPException):
    """The body is larger than MAX_UPLOAD_MB."""

    status_code = HTTP_413_REQUEST_ENTITY_TOO_LARGE


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

    def values(self, name: str) -> list[str]:
        """Every value of a repeated text field (e.g. `timestamp_granularities[]`)."""
        return list(self.fields.get(name, ()))


def _too_large(max_bytes: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        detail=f"the upload is larger than this server's limit of {max_bytes // (1024 * 1024)} MB"
    )


def _boundary(request: Request[Any, Any, Any]) -> bytes:
    content_type = request.headers.get("content-type", "")
    media_type, _, params = content_type.partition(";")
    if media_type.strip().lower() != "multipart/form-data":
        raise ClientException(
            detail="send the audio as multipart/form-data with the file in a form field"
        )
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary" and value:
            return value.strip('"').encode("latin-1")
    raise ClientException(detail="the multipart/form-data body has no boundary")


async def read_multipart(request: Request[Any, Any, Any], *, max_bytes: int) -> MultipartForm:
    """Read and parse the whole multipart body in memory, refusing it past `max_bytes`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    boundary = _boundary(request)
    form = MultipartForm()
    received = 0
    segment: MultipartSegment | None = None
    buffer = bytearray()
    try:
        with PushMultipartParser(boundary, max_segment_count=MAX_PARTS) as parser:
            stream = request.stream()
            while not parser.closed:
                chunk = await anext(stream, b"")
                received += len(chunk)
                if received > max_bytes:
                    raise _too_large(max_bytes)
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
                            raise ClientException(detail="a form field is too long")
                    elif segment is not None:
                        _store_part(form, segment, buffer)
                        segment, buffer = None, bytearray()
    except ParserLimitReached:
        raise ClientException(detail="the multipart body has too many parts") from None
    except ParserError:
        raise ClientException(detail="the multipart/form-data body is malformed") from None
    return form


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
        text = data.decode(segment.charset or "utf-8", errors="replace")
        form.fields.setdefault(segment.name, []).append(text)


def multipart_operation(
    properties: dict[str, Schema | Reference], *, required: list[str], description: str
) -> type[Operation]:
    """An Operation class that documents a multipart body the handler parses itself."""

    body = RequestBody(
        description=description,
        required=True,
        content={
            "multipart/form-data": OpenAPIMediaType(
                schema=Schema(type=OpenAPIType.OBJECT, properties=properties, required=required)
            )
        },
    )

    @dataclass
    class _MultipartOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = body

    return _MultipartOperation


def file_schema(description: str) -> Schema:
    """OpenAPI schema of a binary file field."""
    return Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY, description=description)


def text_schema(description: str, *, enum: list[str] | None = None) -> Schema:
    """OpenAPI schema of a text field."""
    return Schema(type=OpenAPIType.STRING, description=description, enum=enum)
