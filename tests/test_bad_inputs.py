"""The bad-input corpus against every upload route of a live server, each followed by a good job."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bad_inputs import ACCEPTED, BOUNDARY, EMPTY, REFUSED, Case, Upload, corpus
from tests.conftest import SHARED_AUDIO, shared_clip
from tests.server_process import Server, served, server_wait_final

pytestmark = pytest.mark.real_model

SPEECH = SHARED_AUDIO / "en_jfk.flac"
GOOD_CLIP = "en_ljspeech_LJ001-0002.wav"  # 1.9 s of speech


@dataclass(frozen=True)
class Outcome:
    """How a job that was accepted ended, as its surface reports it."""

    status: str
    transcript: str
    duration: float | None  # None where the surface does not say it
    task_id: str | None = None  # the task API's, for its result routes


@dataclass(frozen=True)
class UploadRoute:
    """An upload route and how the corpus's inputs map onto its request and its answers."""

    surface: str
    path: str

    def request(self, url: str, upload: Upload) -> httpx.Response:
        """Send `upload` the way this surface takes it."""
        params, fields = self._options(upload)
        if upload.raw_body is not None:
            content_type = upload.content_type or f"multipart/form-data; boundary={BOUNDARY}"
            return httpx.post(
                url + self.path,
                content=upload.raw_body,
                params=params,
                headers={"Content-Type": content_type},
                timeout=120,
            )
        files = {"file": upload.file} if upload.file is not None else None
        return httpx.post(url + self.path, files=files, data=fields, params=params, timeout=120)

    def _options(self, upload: Upload) -> tuple[dict[str, str], dict[str, str]]:
        """Query parameters and form fields: task API and /asr take options in the query
        string, OpenAI in the form (with a JSON answer that states the duration)."""
        options = {k: v for k, v in upload.options.items() if k in ("language", "model")}
        if self.surface == "openai":
            fields = {"model": "whisper-1", "response_format": "verbose_json"}
            return {}, {**fields, **options, **upload.fields}
        if self.surface == "asr":
            return {"output": "json", **options}, dict(upload.fields)
        return options, dict(upload.fields)

    def detail(self, response: httpx.Response) -> str:
        """The error message, from this surface's error shape."""
        body = response.json()
        if self.surface == "openai":
            return str(body["error"]["message"])
        return str(body["detail"])

    def outcome(self, url: str, response: httpx.Response) -> Outcome:
        """The accepted job's end: polled on the task API, in the answer elsewhere."""
        body = response.json()
        if self.surface == "tasks":
            final = server_wait_final(url, body["task_id"])
            return Outcome(
                final["status"], final["transcript"], final["audio_duration"], body["task_id"]
            )
        duration = body.get("duration") if self.surface == "openai" else None
        return Outcome("finished", body["text"], duration)


# Every upload route: the task API, OpenAI's and whisper-asr-webservice's.
UPLOAD_ROUTES = [
    UploadRoute("tasks", "/api/v1/transcribe"),
    UploadRoute("tasks", "/api/v1/translate"),
    UploadRoute("openai", "/v1/audio/transcriptions"),
    UploadRoute("asr", "/asr"),
]
CASES = corpus(SPEECH, SHARED_AUDIO / GOOD_CLIP)


def _cases() -> list[Any]:
    """Every case on every surface that has a way to send it (no skipped pairs)."""
    return [
        pytest.param(route, case, id=f"{route.path}:{case.name}")
        for route in UPLOAD_ROUTES
        for case in CASES
        if case.applies_to(route.surface)
    ]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server for the whole corpus: tiny.en for English, base for the rest."""
    shared_clip("en_jfk.flac")  # skip where the shared clips are missing
    with served(tmp_path_factory.mktemp("corpus"), DEVELOP_MODE="1") as running:
        yield running
    output = running.output
    assert "Traceback" not in output
    assert "request_failed" not in output


def _good_job_finishes(server: Server, route: UploadRoute) -> None:
    clip = shared_clip(GOOD_CLIP)
    # The language given: no detection pass, the check is that the worker runs.
    good = Upload(file=(clip.name, clip.read_bytes()), options={"language": "en"})
    response = route.request(server.url, good)
    assert response.status_code == 200, response.text
    outcome = route.outcome(server.url, response)
    assert outcome.status == "finished", outcome
    assert outcome.transcript.strip()


def _safe_attachment(header: str) -> bool:
    """The ASCII file name of a Content-Disposition has no path, quote or control character."""
    ascii_part = header.split('filename="', 1)[1].split('"', 1)[0]
    return not any(bad in ascii_part for bad in ("/", "\\", "..", "\r", "\n")) and all(
        32 <= ord(ch) < 127 for ch in ascii_part
    )


@pytest.mark.parametrize(("route", "case"), _cases())
def test_bad_input_gets_a_clear_answer_and_the_next_job_runs(
    server: Server, route: UploadRoute, case: Case
) -> None:
    """Each corpus input on each surface: a clear 4xx (or the right result); a good job follows."""
    response = route.request(server.url, case.make())
    assert response.status_code < 500, response.text
    if case.expect == REFUSED:
        assert 400 <= response.status_code < 500, response.text
        assert len(route.detail(response)) > 10
    else:
        assert response.status_code == 200, response.text
        outcome = route.outcome(server.url, response)
        assert outcome.status == "finished", outcome
        if case.expect == EMPTY:
            assert outcome.transcript == ""
            expected_s = 600.0
        else:
            assert case.expect == ACCEPTED
            assert outcome.transcript.strip()
            expected_s = 1.9
        if outcome.duration is not None:
            assert outcome.duration == pytest.approx(expected_s, abs=0.1)
        if case.expect == ACCEPTED:
            if outcome.task_id is not None:
                result = httpx.get(
                    f"{server.url}/api/v1/tasks/{outcome.task_id}/result",
                    params={"format": "srt"},
                )
                assert result.status_code == 200
                assert _safe_attachment(result.headers["content-disposition"])
            return  # that was a good job already
    _good_job_finishes(server, route)


def test_corpus_size() -> None:
    """The corpus holds the inputs the issue lists (and a few more)."""
    names = {case.name for case in CASES}
    assert len(CASES) >= 20
    assert {"empty body", "one byte", "PNG image", "truncated FLAC", "unknown model"} <= names
    assert all(isinstance(case.make(), Upload) for case in CASES if case.name != "truncated FLAC")
    assert Path(SPEECH).suffix == ".flac"
