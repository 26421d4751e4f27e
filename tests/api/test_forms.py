"""Upload forms: text fields become typed values, bad ones name their field, the schema is typed."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.datastructures import MultiDict
from litestar.testing import AsyncTestClient

from app.api.asr import AsrQuery, DetectLanguageQuery
from app.api.forms import read_fields
from app.api.multipart import MultipartForm
from app.api.openai_audio import OpenAIForm
from app.api.tasks import TaskUploadForm
from app.service.errors import InvalidInputError


def form(**fields: str | list[str]) -> MultipartForm:
    """A multipart form holding these text fields."""
    return MultipartForm(
        fields={
            name: value if isinstance(value, list) else [value] for name, value in fields.items()
        }
    )


def test_text_becomes_typed_values() -> None:
    """Numbers, flags (1/yes/TRUE/off) and choices are read from text, spaces around ignored."""
    task = read_fields(
        TaskUploadForm,
        form(max_line_width=" 42 ", word_timestamps="yes", vad_filter="TRUE", diarize="off"),
    )
    assert (task.max_line_width, task.word_timestamps, task.vad_filter) == (42, True, True)
    assert task.diarize is False
    openai = read_fields(OpenAIForm, form(temperature="0.4", stream="1", response_format=" srt "))
    assert (openai.temperature, openai.stream, openai.response_format) == (0.4, True, "srt")


def test_empty_typed_fields_mean_their_default() -> None:
    """An empty number, flag or choice is as if it were not sent; free text stays as sent."""
    query = read_fields(AsrQuery, form(output="", encode="", max_line_count=" ", language=""))
    assert (query.output, query.encode, query.max_line_count) == ("txt", True, None)
    assert query.language == ""


def test_asr_choices_take_any_case() -> None:
    """whisper-asr-webservice's output and task are matched in any case; OpenAI's are exact."""
    query = read_fields(AsrQuery, form(output="SRT", task="Translate"))
    assert (query.output, query.task) == ("srt", "translate")
    with pytest.raises(InvalidInputError):
        read_fields(OpenAIForm, form(response_format="JSON"))


def test_query_string_fills_what_the_body_lacks() -> None:
    """A field missing from the body is read from the query string, repeated ones included."""
    query = MultiDict([("language", "fr"), ("max_words_per_cue", "3")])
    fields = read_fields(TaskUploadForm, form(language="de"), query)
    assert (fields.language, fields.max_words_per_cue) == ("de", 3)
    detect = read_fields(DetectLanguageQuery, None, MultiDict([("encode", "false")]))
    assert detect.encode is False


def test_repeated_fields_take_both_spellings() -> None:
    """`timestamp_granularities[]` and `timestamp_granularities` both fill the list."""
    fields = read_fields(
        OpenAIForm,
        form(**{"timestamp_granularities[]": ["word"], "timestamp_granularities": ["segment"]}),
    )
    assert fields.timestamp_granularities == ["word", "segment"]


@pytest.mark.parametrize(
    ("form_type", "fields", "param", "words"),
    [
        (TaskUploadForm, {"max_line_width": "0"}, "max_line_width", "whole number from 1 to 10000"),
        (TaskUploadForm, {"max_words_per_cue": "many"}, "max_words_per_cue", "'many'"),
        (TaskUploadForm, {"word_timestamps": "often"}, "word_timestamps", "true or false"),
        (TaskUploadForm, {"num_speakers": "40"}, "num_speakers", "from 1 to 32"),
        (OpenAIForm, {"temperature": "warm"}, "temperature", "number from 0 to 1"),
        (OpenAIForm, {"temperature": "nan"}, "temperature", "number from 0 to 1"),
        (OpenAIForm, {"response_format": "docx"}, "response_format", "one of"),
        (
            OpenAIForm,
            {"timestamp_granularities[]": ["word", "letter"]},
            "timestamp_granularities",
            "may hold segment and word, not 'letter'",
        ),
        (AsrQuery, {"task": "summarise"}, "task", "transcribe, translate"),
    ],
)
def test_bad_values_name_their_field(
    form_type: type[Any], fields: dict[str, Any], param: str, words: str
) -> None:
    """A value msgspec refuses is an InvalidInputError naming the field and what it takes."""
    with pytest.raises(InvalidInputError) as caught:
        read_fields(form_type, form(**fields))
    assert caught.value.param == param
    assert str(caught.value).startswith(param) and words in str(caught.value)


async def test_upload_schemas_show_typed_fields(client: AsyncTestClient[Litestar]) -> None:
    """The documented upload fields carry their types, bounds and choices, beside a binary file."""
    paths = (await client.get("/docs/openapi.json")).json()["paths"]

    def body(path: str) -> dict[str, Any]:
        schema: dict[str, Any] = paths[path]["post"]["requestBody"]["content"][
            "multipart/form-data"
        ]["schema"]
        return schema

    task = body("/api/v1/transcribe")
    assert task["required"] == ["file"]
    assert task["properties"]["file"] == {
        "type": "string",
        "format": "binary",
        "description": task["properties"]["file"]["description"],
    }
    width = task["properties"]["max_line_width"]
    assert (width["type"], width["minimum"], width["maximum"]) == ("integer", 1, 10_000)
    assert task["properties"]["word_timestamps"]["type"] == "boolean"
    assert task["properties"]["language"]["type"] == "string"
    openai = body("/v1/audio/transcriptions")["properties"]
    assert openai["response_format"]["type"] == "string"
    assert "diarized_json" in openai["response_format"]["enum"]
    assert openai["temperature"]["type"] == "number"
    assert openai["timestamp_granularities[]"]["items"]["enum"] == ["segment", "word"]
    asr = {p["name"]: p["schema"] for p in paths["/asr"]["post"]["parameters"]}
    assert asr["output"]["enum"] and asr["encode"]["type"] == "boolean"
    assert body("/asr")["properties"].keys() == {"audio_file"}
