"""The task API's transcription options, subtitle shaping and verbose_json result."""

from __future__ import annotations

import msgspec
import pytest
import srt
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.asgi_helpers import upload, wait_final
from tests.conftest import AppFactory, FakeTranscriber


@pytest.fixture
def fake_transcriber() -> FakeTranscriber:
    """A fake that speaks six words in two segments."""
    return FakeTranscriber(text="one two three four five six", segment_count=2)


async def test_form_options_reach_the_engine(
    client: AsyncTestClient[Litestar], fake_transcriber: FakeTranscriber
) -> None:
    """word_timestamps, vad_filter, initial_prompt and model go from form fields to the job."""
    response = await upload(
        client,
        fields={
            "word_timestamps": "true",
            "vad_filter": "1",
            "initial_prompt": "Glossary: Kubernetes",
            "model": "tiny",
            "language": "de",
        },
    )
    final = await wait_final(client, response.json()["task_id"])
    options = fake_transcriber.calls[-1]
    assert options.word_timestamps and options.vad_filter
    assert options.initial_prompt == "Glossary: Kubernetes"
    assert options.model == "tiny"
    assert final["target_model_size"] == "tiny"
    assert final["used_model_size"] == "base"  # tiny is not on disk: the nearest one ran


async def test_query_options_work_too(
    client: AsyncTestClient[Litestar], fake_transcriber: FakeTranscriber
) -> None:
    """The same options may come in the query string, as language already could."""
    response = await upload(client, params={"word_timestamps": "yes", "model": "default"})
    await wait_final(client, response.json()["task_id"])
    assert fake_transcriber.calls[-1].word_timestamps is True
    assert fake_transcriber.calls[-1].model is None


async def test_verbose_json_result_with_words(client: AsyncTestClient[Litestar]) -> None:
    """format=verbose_json gives OpenAI's shape with words for a word-timed task, as .json."""
    task_id = (await upload(client, fields={"word_timestamps": "true"})).json()["task_id"]
    await wait_final(client, task_id)
    response = await client.get(
        f"/api/v1/tasks/{task_id}/result", params={"format": "verbose_json"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert 'filename="clip.json"' in response.headers["content-disposition"]
    body = msgspec.json.decode(response.content)
    assert (body["task"], body["language"]) == ("transcribe", "english")
    assert [w["word"] for w in body["words"]] == ["one", "two", "three", "four", "five", "six"]
    assert body["usage"] == {"type": "duration", "seconds": 1}


async def test_shaping_at_upload_asks_for_words_and_shapes_srt(
    client: AsyncTestClient[Litestar], fake_transcriber: FakeTranscriber
) -> None:
    """Shaping fields at upload turn word timing on and shape the srt; the query overrides."""
    task_id = (await upload(client, fields={"max_words_per_cue": "2"})).json()["task_id"]
    await wait_final(client, task_id)
    assert fake_transcriber.calls[-1].word_timestamps is True
    route = f"/api/v1/tasks/{task_id}/result"

    shaped = (await client.get(route, params={"format": "srt"})).text
    assert [s.content for s in srt.parse(shaped)] == ["one two", "three", "four five", "six"]

    override = (await client.get(route, params={"format": "srt", "max_words_per_cue": 1})).text
    assert len(list(srt.parse(override))) == 6

    wrapped = await client.get(
        route,
        params={"format": "vtt", "max_words_per_cue": 10, "max_line_width": 9},
    )
    assert "one two\nthree" in wrapped.text


@pytest.mark.parametrize(
    "fields",
    [
        {"model": "whisper-9"},
        {"word_timestamps": "often"},
        {"max_line_count": "0"},
        {"max_words_per_cue": "many"},
    ],
)
async def test_bad_options_are_400_in_task_shape(
    client: AsyncTestClient[Litestar], fields: dict[str, str]
) -> None:
    """Bad option values answer 400 with the task API's {status_code, detail}."""
    response = await upload(client, fields=fields)
    assert response.status_code == 400
    assert response.json()["status_code"] == 400
    assert next(iter(fields)) in response.json()["detail"]


async def test_model_above_cap_is_400(build_app: AppFactory) -> None:
    """A model above MAX_MODEL is refused at upload."""
    async with AsyncTestClient(app=build_app(max_model="base")) as client:
        response = await upload(client, fields={"model": "large-v3"})
    assert response.status_code == 400
    assert "MAX_MODEL" in response.json()["detail"]


async def test_bad_result_shaping_query_is_400(client: AsyncTestClient[Litestar]) -> None:
    """A shaping query value below 1 answers 400."""
    task_id = (await upload(client)).json()["task_id"]
    await wait_final(client, task_id)
    response = await client.get(
        f"/api/v1/tasks/{task_id}/result", params={"format": "srt", "max_line_width": 0}
    )
    assert response.status_code == 400


async def test_words_timed_for_cues_stay_out_of_json(
    client: AsyncTestClient[Litestar], fake_transcriber: FakeTranscriber
) -> None:
    """Without word_timestamps the words are timed for the readable cues but no json shows them."""
    task_id = (await upload(client)).json()["task_id"]
    await wait_final(client, task_id)
    assert fake_transcriber.calls[-1].cue_words
    assert not fake_transcriber.calls[-1].word_timestamps
    route = f"/api/v1/tasks/{task_id}/result"
    body = msgspec.json.decode((await client.get(route, params={"format": "json"})).content)
    assert all(segment["words"] is None for segment in body["segments"])
    verbose = msgspec.json.decode(
        (await client.get(route, params={"format": "verbose_json"})).content
    )
    assert "words" not in verbose
    cues = list(srt.parse((await client.get(route, params={"format": "srt"})).text))
    assert " ".join(cue.content for cue in cues).split() == [
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
    ]
