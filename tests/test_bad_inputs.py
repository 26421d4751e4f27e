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
from tests.server_process import Server, start_server, wait_final

pytestmark = pytest.mark.real_model

SPEECH = SHARED_AUDIO / "en_jfk.flac"
GOOD_CLIP = "en_ljspeech_LJ001-0002.wav"  # 1.9 s of speech


@dataclass(frozen=True)
class UploadRoute:
    """An upload route and how the corpus's inputs map onto its request."""

    surface: str
    path: str

    def request(self, url: str, upload: Upload) -> httpx.Response:
        """Send `upload` the way this surface takes it (task API: options as query parameters)."""
        params = {k: v for k, v in upload.options.items() if k in ("language", "model")}
        if upload.raw_body is not None:
            content_type = upload.content_type or f"multipart/form-data; boundary={BOUNDARY}"
            return httpx.post(
                url + self.path,
                content=upload.raw_body,
                params=params,
                headers={"Content-Type": content_type},
                timeout=60,
            )
        files = {"file": upload.file} if upload.file is not None else None
        return httpx.post(
            url + self.path, files=files, data=upload.fields, params=params, timeout=60
        )


# Every upload route on this branch; OpenAI's and /asr's adapters join here.
UPLOAD_ROUTES = [
    UploadRoute("tasks", "/api/v1/transcribe"),
    UploadRoute("tasks", "/api/v1/translate"),
]
CASES = corpus(SPEECH, SHARED_AUDIO / GOOD_CLIP)


def _cases() -> list[Any]:
    params = []
    for route in UPLOAD_ROUTES:
        for case in CASES:
            marks = (
                ()
                if case.applies_to(route.surface)
                else pytest.mark.skip(
                    reason=f"{route.surface} routes have no way to send this input"
                )
            )
            params.append(pytest.param(route, case, id=f"{route.path}:{case.name}", marks=marks))
    return params


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server for the whole corpus: tiny.en for English, base for the rest."""
    shared_clip("en_jfk.flac")  # skip where the shared clips are missing
    running = start_server(tmp_path_factory.mktemp("corpus"), DEVELOP_MODE="1")
    running.wait_ready()
    yield running
    running.stop()
    output = running.output
    assert "Traceback" not in output
    assert "request_failed" not in output


def _good_job_finishes(server: Server, route: UploadRoute) -> None:
    clip = shared_clip(GOOD_CLIP)
    response = httpx.post(
        server.url + route.path,
        files={"file": (clip.name, clip.read_bytes())},
        params={"language": "en"},  # no detection pass: the check is that the worker runs
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body = wait_final(server.url, response.json()["task_id"])
    assert body["status"] == "finished", body
    assert body["transcript"].strip()


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
    """Each corpus input: a clear 4xx (or the right result), never a 5xx; a good job follows."""
    response = route.request(server.url, case.make())
    assert response.status_code < 500, response.text
    if case.expect == REFUSED:
        assert 400 <= response.status_code < 500, response.text
        detail = response.json()["detail"]
        assert isinstance(detail, str) and len(detail) > 10
    else:
        assert response.status_code == 200, response.text
        task_id = response.json()["task_id"]
        body = wait_final(server.url, task_id)
        assert body["status"] == "finished", body
        if case.expect == EMPTY:
            assert body["transcript"] == ""
            assert body["audio_duration"] == pytest.approx(600.0, abs=0.1)
        else:
            assert case.expect == ACCEPTED
            assert body["transcript"].strip()
            assert body["audio_duration"] == pytest.approx(1.9, abs=0.1)
            result = httpx.get(
                f"{server.url}/api/v1/tasks/{task_id}/result", params={"format": "srt"}
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
