"""The OpenAPI operation of an upload route, generated from its form Struct.

The request body is multipart/form-data: a binary file plus the form's typed fields
(msgspec's JSON Schema of the Struct, as Litestar's `Schema`), or the fields as query
parameters for whisper-asr-webservice's style; the 200 lists every media type the
route may answer with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.enums import ParamType
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    RequestBody,
    Schema,
)

__all__ = ["upload_operation"]


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _schema(node: Mapping[str, Any]) -> Schema:
    """A JSON Schema of msgspec's as Litestar's Schema (OpenAPI 3.1's schemas are JSON Schema).

    Choices get `type: string` beside their enum, so Swagger UI offers them in a list.
    """
    kwargs: dict[str, Any] = {}
    for key, value in node.items():
        if key == "type":
            value = OpenAPIType(value)
        elif key == "items":
            value = _schema(value)
        elif key in ("anyOf", "oneOf", "allOf"):
            value = [_schema(choice) for choice in value]
        kwargs[_snake(key)] = value
    if "enum" in node and "type" not in node:
        kwargs["type"] = OpenAPIType.STRING
    return Schema(**kwargs)


def _field_schemas(form_type: type[msgspec.Struct]) -> dict[str, Schema]:
    """Each field's schema as a form sends it: its value's type, never null (absent is None)."""
    _, components = msgspec.json.schema_components([form_type])
    properties: dict[str, dict[str, Any]] = components[form_type.__name__]["properties"]
    schemas = {}
    for name, prop in properties.items():
        node = {k: v for k, v in prop.items() if k != "anyOf" and v is not None}
        given = [choice for choice in prop.get("anyOf", ()) if choice.get("type") != "null"]
        if len(given) == 1:
            node |= given[0]
        schemas[name] = _schema(node)
    return schemas


def upload_operation(
    form_type: type[msgspec.Struct],
    *,
    file_field: str,
    file_description: str,
    description: str,
    fields_in_query: bool = False,
    answers: Sequence[str] = (),
) -> type[Operation]:
    """The OpenAPI operation of an upload route: a binary file plus the form's typed fields.

    The fields are documented in the multipart body, or as query parameters with
    `fields_in_query` (whisper-asr-webservice's style). `answers` lists the media types
    a 200 may also have besides JSON (subtitles, plain text, an event stream).
    """
    fields = _field_schemas(form_type)
    file = Schema(
        type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY, description=file_description
    )
    in_body = {} if fields_in_query else fields
    body = RequestBody(
        description=description,
        required=True,
        content={
            "multipart/form-data": OpenAPIMediaType(
                schema=Schema(
                    type=OpenAPIType.OBJECT,
                    properties={file_field: file, **in_body},
                    required=[file_field],
                )
            )
        },
    )
    in_query = [
        Parameter(
            name=name,
            param_in=ParamType.QUERY,
            schema=schema,
            description=schema.description,
            required=False,
        )
        for name, schema in (fields.items() if fields_in_query else ())
    ]

    # Litestar documents a body only from a `data` parameter, which would make it parse the
    # upload itself (spooling files to disk); `operation_class` is its hook for everything else.
    @dataclass
    class _UploadOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = body
            self.parameters = [*(self.parameters or []), *in_query] or None
            ok = (self.responses or {}).get("200")
            if answers and isinstance(ok, OpenAPIResponse):
                text = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))
                types = (answer.partition(";")[0] for answer in answers)  # no parameters
                ok.content = {**(ok.content or {}), **dict.fromkeys(types, text)}

    return _UploadOperation
