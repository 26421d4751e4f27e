"""Upload forms as msgspec Structs: one declaration gives both the parsing and the OpenAPI schema.

A form Struct lists the text fields a surface reads, each `str | None` (or
`list[str]` for a repeated field) with its description in `msgspec.Meta`. The
values arrive as text in the multipart body or the query string; turning them
into options (with messages that name the field) is the surface's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import msgspec
from litestar.enums import ParamType
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Parameter,
    RequestBody,
    Schema,
)

from app.api.form_options import parse_bool, parse_language, parse_model, parse_subtitle_shape
from app.api.multipart import MultipartForm
from app.api.speaker_options import parse_speaker_options, with_speakers
from app.service import JobSpec, TranscriptionService
from app.transcription.types import SubtitleShape, TaskType, TranscribeOptions

__all__ = ["ShapedForm", "WhisperForm", "read_fields", "upload_operation"]

FormT = TypeVar("FormT", bound=msgspec.Struct)


class ShapedForm(msgspec.Struct, kw_only=True):
    """The subtitle-shaping fields every upload surface accepts (srt/vtt cue cutting)."""

    max_line_width: Annotated[
        str | None, msgspec.Meta(description="srt/vtt: characters per line")
    ] = None
    max_line_count: Annotated[str | None, msgspec.Meta(description="srt/vtt: lines per cue")] = None
    max_words_per_cue: Annotated[str | None, msgspec.Meta(description="srt/vtt: words per cue")] = (
        None
    )

    @property
    def shape(self) -> SubtitleShape:
        """How srt/vtt cues are cut (InvalidInputError naming a bad field)."""
        return parse_subtitle_shape(
            {
                "max_line_width": self.max_line_width,
                "max_line_count": self.max_line_count,
                "max_words_per_cue": self.max_words_per_cue,
            }
        )


class WhisperForm(ShapedForm, kw_only=True):
    """Whisper's own options, as the task API and /asr take them."""

    language: Annotated[
        str | None, msgspec.Meta(description="language code such as en or de; omit to detect it")
    ] = None
    model: Annotated[
        str | None,
        msgspec.Meta(description="a model name within MAX_MODEL; omit for the server's choice"),
    ] = None
    initial_prompt: Annotated[
        str | None, msgspec.Meta(description="text to guide the style or spelling")
    ] = None
    word_timestamps: Annotated[
        str | None, msgspec.Meta(description="true: time every word (verbose_json, finer cues)")
    ] = None
    vad_filter: Annotated[
        str | None, msgspec.Meta(description="true: skip the parts without speech")
    ] = None
    diarize: Annotated[
        str | None, msgspec.Meta(description="true: label who speaks (speaker A, B, ...)")
    ] = None
    num_speakers: Annotated[
        str | None, msgspec.Meta(description="diarize: the number of speakers, when known")
    ] = None
    min_speakers: Annotated[
        str | None, msgspec.Meta(description="diarize: at least this many speakers")
    ] = None
    max_speakers: Annotated[
        str | None, msgspec.Meta(description="diarize: at most this many speakers")
    ] = None

    def spec(
        self,
        service: TranscriptionService,
        *,
        task_type: TaskType,
        owner: str | None,
        surface: str,
        raw_pcm: bool = False,
    ) -> JobSpec:
        """Check every field (InvalidInputError naming a bad one); shaping asks for word timing."""
        shape = self.shape
        words = parse_bool(self.word_timestamps, "word_timestamps")
        options = TranscribeOptions(
            task=task_type,
            language=parse_language(self.language),
            initial_prompt=self.initial_prompt or None,
            word_timestamps=words or not shape.is_plain,
            vad_filter=parse_bool(self.vad_filter, "vad_filter"),
            model=parse_model(self.model, service.models),
        )
        speakers = parse_speaker_options(
            {
                "diarize": self.diarize,
                "num_speakers": self.num_speakers,
                "min_speakers": self.min_speakers,
                "max_speakers": self.max_speakers,
            }.get,
            keep_words=words,
        )
        options = with_speakers(options, speakers)
        return JobSpec(
            task_type=task_type,
            options=options,
            subtitle_shape=shape,
            owner=owner,
            surface=surface,
            raw_pcm=raw_pcm,
        )


def _is_list(field: msgspec.structs.FieldInfo) -> bool:
    info = msgspec.inspect.type_info(field.type)
    if isinstance(info, msgspec.inspect.Metadata):
        info = info.type
    return isinstance(info, msgspec.inspect.ListType)


def read_fields(
    form_type: type[FormT],
    form: MultipartForm | None,
    query: Mapping[str, Any] | None = None,
) -> FormT:
    """The form's fields from the multipart body, else from the query string.

    A repeated field also answers to its name without `[]` (both spellings are
    common). Unknown fields are ignored, as every client sends some.
    """
    raw: dict[str, Any] = {}
    for field in msgspec.structs.fields(form_type):
        names = dict.fromkeys((field.encode_name, field.encode_name.removesuffix("[]")))
        if _is_list(field):
            values = [v for name in names for v in _all(form, query, name)]
            if values:
                raw[field.encode_name] = values
            continue
        for name in names:
            value = _first(form, query, name)
            if value is not None:
                raw[field.encode_name] = value
                break
    return msgspec.convert(raw, form_type)


def _first(form: MultipartForm | None, query: Mapping[str, Any] | None, name: str) -> str | None:
    if form is not None and (value := form.value(name)) is not None:
        return value
    if query is not None and (value := query.get(name)) is not None:
        return str(value)
    return None


def _all(form: MultipartForm | None, query: Mapping[str, Any] | None, name: str) -> list[str]:
    values = form.values(name) if form is not None else []
    if not values and query is not None and hasattr(query, "getall"):
        values = [str(v) for v in query.getall(name, [])]
    return values


def _field_schemas(form_type: type[msgspec.Struct]) -> dict[str, Schema]:
    """Each field's OpenAPI schema, from the JSON schema msgspec derives from the Struct."""
    name = form_type.__name__
    json_schema = msgspec.json.schema(form_type)["$defs"][name]
    properties: dict[str, Schema] = {}
    for field_name, prop in json_schema.get("properties", {}).items():
        choices = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
        inner = choices[0] if choices else {}
        if inner.get("type") == "array":
            items = Schema(type=OpenAPIType.STRING, enum=inner.get("items", {}).get("enum"))
            properties[field_name] = Schema(
                type=OpenAPIType.ARRAY, items=items, description=prop.get("description")
            )
        else:
            properties[field_name] = Schema(
                type=OpenAPIType.STRING,
                description=prop.get("description"),
                enum=prop.get("enum") or inner.get("enum"),
            )
    return properties


def upload_operation(
    form_type: type[msgspec.Struct],
    *,
    file_field: str,
    file_description: str,
    description: str,
    fields_in_query: bool = False,
) -> type[Operation]:
    """An Operation class documenting an upload route whose body the handler reads itself.

    The file goes in the multipart body; the form's fields are documented there,
    or as query parameters with `fields_in_query` (whisper-asr-webservice's style).
    """
    fields = _field_schemas(form_type)
    properties: dict[str, Any] = {
        file_field: Schema(
            type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY, description=file_description
        )
    }
    parameters: list[Parameter] = []
    if fields_in_query:
        parameters = [
            Parameter(
                name=name,
                param_in=ParamType.QUERY,
                schema=schema,
                description=schema.description,
                required=False,
            )
            for name, schema in fields.items()
        ]
    else:
        properties.update(fields)
    body = RequestBody(
        description=description,
        required=True,
        content={
            "multipart/form-data": OpenAPIMediaType(
                schema=Schema(type=OpenAPIType.OBJECT, properties=properties, required=[file_field])
            )
        },
    )

    @dataclass
    class _UploadOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = body
            self.parameters = [*(self.parameters or []), *parameters] or None

    return _UploadOperation
