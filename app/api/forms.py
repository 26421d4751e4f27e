"""Upload forms as msgspec Structs: one declaration gives the parsing and the OpenAPI schema
(the schema itself: `app.api.upload_schema`).

A form Struct declares each field with its real type (bool, int, float, a Literal
of choices, list[str]) and its description and bounds in `msgspec.Meta`. The text
of the multipart body or the query string becomes the Struct through msgspec's lax
conversion (`read_fields`); a value msgspec refuses is an `InvalidInputError` that
names the field. What msgspec cannot check (language names, models within the cap,
the speaker fields) each form's `spec()` does by hand.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import msgspec

from app.api.form_options import parse_language, parse_model
from app.api.multipart import MultipartForm
from app.api.speaker_options import SpeakerCount, parse_speaker_options, with_speakers
from app.service import JobSpec, TranscriptionService
from app.service.errors import InvalidInputError
from app.transcription.types import SubtitleShape, TaskType, TranscribeOptions

__all__ = [
    "ANY_CASE",
    "MAX_SHAPE_VALUE",
    "Language",
    "ShapedForm",
    "WhisperForm",
    "read_fields",
]

FormT = TypeVar("FormT", bound=msgspec.Struct)

# Far beyond any screen: a guard against absurd values, not a style rule.
MAX_SHAPE_VALUE = 10_000
ShapeLimit = Annotated[int, msgspec.Meta(ge=1, le=MAX_SHAPE_VALUE)]
Language = Annotated[
    str | None,
    msgspec.Meta(
        description="a language code such as en or de, or its name; omit to detect it",
        examples=[""],
    ),
]
# `msgspec.Meta(extra=ANY_CASE)` on a choice field: its values are matched in any case.
ANY_CASE: dict[str, Any] = {"any_case": True}
# Spellings of true and false that forms take beside msgspec's own 1/0/true/false (any case).
_BOOL_WORDS = {"yes": "true", "on": "true", "no": "false", "off": "false"}
_ERROR_PATH = re.compile(r"at `\$\.(?P<path>.*)`$")


# ---------------------------------------------------------------- the forms


class ShapedForm(msgspec.Struct, kw_only=True):
    """The subtitle-shaping fields every upload surface accepts (srt/vtt cue cutting)."""

    # Examples are what /docs fills in for "Try it out" (else "string" or a field's minimum):
    # a common subtitle style here; elsewhere the server's choice, or values that ask nothing.
    max_line_width: Annotated[
        ShapeLimit | None, msgspec.Meta(description="srt/vtt: characters per line", examples=[42])
    ] = None
    max_line_count: Annotated[
        ShapeLimit | None, msgspec.Meta(description="srt/vtt: lines per cue", examples=[2])
    ] = None
    max_words_per_cue: Annotated[
        ShapeLimit | None, msgspec.Meta(description="srt/vtt: words per cue", examples=[12])
    ] = None

    @property
    def shape(self) -> SubtitleShape:
        """How srt/vtt cues are cut."""
        return SubtitleShape(
            max_line_width=self.max_line_width,
            max_line_count=self.max_line_count,
            max_words_per_cue=self.max_words_per_cue,
        )


class WhisperForm(ShapedForm, kw_only=True):
    """Whisper's own options, as the task API and /asr take them."""

    language: Language = None
    model: Annotated[
        str | None,
        msgspec.Meta(
            description="a model name within MAX_MODEL; default or omitted: the server's choice",
            examples=["default"],
        ),
    ] = None
    initial_prompt: Annotated[
        str | None, msgspec.Meta(description="text to guide the style or spelling", examples=[""])
    ] = None
    word_timestamps: Annotated[
        bool, msgspec.Meta(description="true: time every word (verbose_json, finer cues)")
    ] = False
    vad_filter: Annotated[bool, msgspec.Meta(description="true: skip the parts without speech")] = (
        False
    )
    diarize: Annotated[
        bool, msgspec.Meta(description="true: label who speaks (speaker A, B, ...)")
    ] = False
    num_speakers: Annotated[
        SpeakerCount | None,
        msgspec.Meta(description="diarize: the number of speakers, when known", examples=[2]),
    ] = None
    min_speakers: Annotated[
        SpeakerCount | None,
        msgspec.Meta(description="diarize: at least this many speakers", examples=[1]),
    ] = None
    max_speakers: Annotated[
        SpeakerCount | None,
        msgspec.Meta(description="diarize: at most this many speakers", examples=[4]),
    ] = None

    def spec(
        self,
        service: TranscriptionService,
        *,
        task_type: TaskType,
        owner: str | None,
        surface: str,
        raw_pcm: bool = False,
        cues_wanted: bool = True,
    ) -> JobSpec:
        """The job these fields ask for (InvalidInputError naming a bad language or model).

        Shaped cues are cut on word timings, so shaping asks for them: limits the client
        names show the words as before; the readable default (SUBTITLE_SHAPING) times them
        for the cues only, unless the caller knows no cue will be rendered (`cues_wanted`).
        """
        shape = msgspec.structs.replace(self.shape, readable=service.settings.subtitle_shaping)
        times_cues = shape.readable and cues_wanted
        options = TranscribeOptions(
            task=task_type,
            language=parse_language(self.language),
            initial_prompt=self.initial_prompt or None,
            word_timestamps=self.word_timestamps or shape.has_limits,
            cue_words=times_cues,
            vad_filter=self.vad_filter,
            model=parse_model(self.model, service.models),
        )
        speakers = parse_speaker_options(
            diarize=self.diarize,
            num_speakers=self.num_speakers,
            min_speakers=self.min_speakers,
            max_speakers=self.max_speakers,
            keep_words=self.word_timestamps,
        )
        return JobSpec(
            task_type=task_type,
            options=with_speakers(options, speakers),
            subtitle_shape=shape,
            owner=owner,
            surface=surface,
            raw_pcm=raw_pcm,
        )


# ---------------------------------------------------------------- text into a form


@dataclass(frozen=True, slots=True)
class _Field:
    """One form field as the text reader sees it."""

    name: str  # the attribute, and the parameter an error names
    wire: str  # the name msgspec converts from
    spellings: tuple[str, ...]  # the names a client may send it under
    kind: msgspec.inspect.Type  # the value's type, without None and metadata
    any_case: bool


def _value_type(field: msgspec.structs.FieldInfo) -> tuple[msgspec.inspect.Type, bool]:
    """The field's value type (Optional and Annotated taken off) and whether it takes any case."""
    kind = msgspec.inspect.type_info(field.type)
    any_case = False
    while isinstance(kind, msgspec.inspect.Metadata | msgspec.inspect.UnionType):
        if isinstance(kind, msgspec.inspect.Metadata):
            any_case = any_case or bool((kind.extra or {}).get("any_case"))
            kind = kind.type
            continue
        given = [t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType)]
        if len(given) != 1:
            break
        kind = given[0]
    return kind, any_case


@functools.cache
def _fields(form_type: type[msgspec.Struct]) -> tuple[_Field, ...]:
    fields = []
    for info in msgspec.structs.fields(form_type):
        kind, any_case = _value_type(info)
        # A repeated field also answers to its name without `[]`: both spellings are common.
        spellings = tuple(dict.fromkeys((info.encode_name, info.encode_name.removesuffix("[]"))))
        fields.append(_Field(info.name, info.encode_name, spellings, kind, any_case))
    return tuple(fields)


def _clean(field: _Field, text: str) -> str | None:
    """The text as msgspec's lax conversion reads it; None where it means "not given".

    Free text stays as sent. A typed value may carry spaces around it, and an empty
    one means the field's default.
    """
    if isinstance(field.kind, msgspec.inspect.StrType):
        return text
    cleaned = text.strip()
    if not cleaned:
        return None
    if isinstance(field.kind, msgspec.inspect.BoolType):
        lowered = cleaned.lower()
        return _BOOL_WORDS.get(lowered, lowered)
    return cleaned.lower() if field.any_case else cleaned


def read_fields(
    form_type: type[FormT],
    form: MultipartForm | None,
    query: Mapping[str, Any] | None = None,
) -> FormT:
    """The form's fields from the multipart body, else from the query string, typed.

    Unknown fields are ignored, as every client sends some. A value of the wrong
    type or out of bounds is an InvalidInputError naming its field.
    """
    sent: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    for field in _fields(form_type):
        if isinstance(field.kind, msgspec.inspect.ListType):
            values = [v for name in field.spellings for v in _all(form, query, name)]
            if values:
                sent[field.wire] = raw[field.wire] = values
            continue
        text = next(
            (v for name in field.spellings if (v := _first(form, query, name)) is not None), None
        )
        if text is not None and (cleaned := _clean(field, text)) is not None:
            sent[field.wire], raw[field.wire] = text, cleaned
    try:
        return msgspec.convert(raw, form_type, strict=False)
    except msgspec.ValidationError as exc:
        raise _invalid(form_type, sent, str(exc)) from None


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


def _invalid(
    form_type: type[msgspec.Struct], sent: dict[str, Any], error: str
) -> InvalidInputError:
    """msgspec's refusal (`... - at `$.field[1]``) as an InvalidInputError naming the field."""
    match = _ERROR_PATH.search(error)
    path = match["path"] if match else ""
    for field in _fields(form_type):
        rest = path.removeprefix(field.wire)
        if rest != path and (not rest or rest.startswith("[")):
            value = sent.get(field.wire)
            if isinstance(value, list):
                value = value[int(rest.strip("[]") or 0)]
            return InvalidInputError(_expected(field, str(value)[:64]), param=field.name)
    return InvalidInputError(f"a form field is not valid: {error}")


def _expected(field: _Field, value: str) -> str:
    """What the field takes, said for the client, and the value it got."""
    kind = field.kind
    if isinstance(kind, msgspec.inspect.ListType):
        kind = kind.item_type
        if isinstance(kind, msgspec.inspect.LiteralType):
            allowed = " and ".join(str(v) for v in kind.values)
            return f"{field.name} may hold {allowed}, not {value!r}"
    if isinstance(kind, msgspec.inspect.BoolType):
        return f"{field.name} must be true or false, not {value!r}"
    if isinstance(kind, msgspec.inspect.IntType):
        return f"{field.name} must be a whole number{_bounds(kind)}, not {value!r}"
    if isinstance(kind, msgspec.inspect.FloatType):
        return f"{field.name} must be a number{_bounds(kind)}, not {value!r}"
    if isinstance(kind, msgspec.inspect.LiteralType):
        allowed = ", ".join(str(v) for v in kind.values)
        return f"{field.name} must be one of {allowed}, not {value!r}"
    return f"{field.name} is not valid: {value!r}"


def _bounds(kind: msgspec.inspect.IntType | msgspec.inspect.FloatType) -> str:
    """The bounds of a number field as a message says them, such as " from 1 to 32"."""
    low, high = (f"{b:g}" if isinstance(b, float) else str(b) for b in (kind.ge, kind.le))
    if kind.ge is not None and kind.le is not None:
        return f" from {low} to {high}"
    if kind.ge is not None:
        return f" of at least {low}"
    return f" of at most {high}" if kind.le is not None else ""


# ---------------------------------------------------------------- the OpenAPI schema
