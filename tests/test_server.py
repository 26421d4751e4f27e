"""The real `whisper-api` process on a loopback port, as a user starts it."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.bench.runner import word_error_rate
from tests.conftest import reference_text, shared_clip
from tests.server_process import read_sse, served, server_upload, server_wait_final, start_server

pytestmark = pytest.mark.real_model


def test_fresh_server_transcribes_jfk_offline(server_factory: Any) -> None:
    """Default settings: the server answers on loopback and jfk comes back within 10% WER."""
    server = server_factory()
    response = server_upload(server.url, "/api/v1/transcribe", shared_clip("en_jfk.flac"))
    assert response.status_code == 200
    body = server_wait_final(server.url, response.json()["task_id"])
    assert body["status"] == "finished"
    assert word_error_rate(reference_text("en_jfk.flac"), body["transcript"]) <= 0.10


def test_six_simultaneous_uploads_with_queue_of_two(server_factory: Any) -> None:
    """MAX_TASK_QUEUE_SIZE=2: extra uploads get 429 at once; every accepted task finishes."""
    # BATCH_SIZE=1: a batching worker would take up to BATCH_SIZE jobs off the queue at once.
    # Every upload comes from 127.0.0.1: one client may fill the queue in this test.
    server = server_factory(
        MAX_TASK_QUEUE_SIZE="2",
        MAX_QUEUED_PER_CLIENT="2",
        MAX_UPLOADS_IN_FLIGHT_PER_CLIENT="6",
        BATCH_SIZE="1",
    )
    clip = shared_clip("en_ls-test-clean_1089-134686-0001.flac")
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(
            pool.map(lambda _: server_upload(server.url, "/api/v1/transcribe", clip), range(6))
        )
    accepted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(accepted) + len(refused) == 6
    assert 2 <= len(accepted) <= 3  # two waiting, plus one already running
    assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
    for response in accepted:
        assert server_wait_final(server.url, response.json()["task_id"])["status"] == "finished"


def test_bad_setting_exits_with_one_line(tmp_path: Path) -> None:
    """MAX_MODEL=huge stops start-up with one line naming the variable."""
    server = start_server(tmp_path, MAX_MODEL="huge")
    assert server.process.wait(timeout=30) != 0
    lines = server.log_path.read_text().strip().splitlines()
    assert len(lines) == 1
    assert "MAX_MODEL" in lines[0] and "huge" in lines[0]


def test_sigterm_stops_the_server_promptly(server_factory: Any) -> None:
    """SIGTERM ends the process with status 0 without hanging."""
    server = server_factory()
    server.process.terminate()
    assert server.process.wait(timeout=20) == 0


SECRET_KEY = "sk-privacy-test-0123456789abcdef"
WRONG_KEY = "sk-wrong-key-fedcba9876543210"
CLIENT_IP = "203.0.113.77"
EMAIL = "alice.secret@example.org"


def _content_words(*texts: str) -> set[str]:
    """The distinctive words of transcripts: lower-case, five letters or more."""
    words = set()
    for text in texts:
        for raw in text.lower().split():
            word = "".join(ch for ch in raw if ch.isalpha())
            if len(word) >= 5:
                words.add(word)
    return words


def _exercise_every_surface(url: str, clips: dict[str, Path]) -> tuple[list[str], list[str]]:
    """Use each route of the task API through a trusted proxy; return task ids and texts."""
    proxy = {"X-Forwarded-For": CLIENT_IP, "X-Email": EMAIL, "X-User": "alice"}
    auth = {**proxy, "Authorization": f"Bearer {SECRET_KEY}"}
    task_ids: list[str] = []
    texts: list[str] = []
    for route, clip, language in (
        ("/api/v1/transcribe", clips["en"], None),
        ("/api/v1/transcribe?language=de", clips["de"], "de"),
        ("/api/v1/translate", clips["de"], None),
    ):
        response = server_upload(url, route, clip, headers=auth)
        assert response.status_code == 200, response.text
        task_id = response.json()["task_id"]
        task_ids.append(task_id)
        assert read_sse(f"{url}/api/v1/tasks/{task_id}/events", headers=auth)  # streams to the end
        body = server_wait_final(url, task_id, headers=auth)
        assert body["status"] == "finished", body
        texts.append(body["transcript"])
        assert language is None or body["source_language"] == language
    first = task_ids[0]
    for path, params in (
        (f"/api/v1/tasks/{first}", {}),
        ("/api/v1/srt", {"task_id": first}),
        *((f"/api/v1/tasks/{first}/result", {"format": f}) for f in ("txt", "srt", "vtt", "tsv")),
        (f"/api/v1/tasks/{first}/result", {"format": "json"}),
        ("/api/v1/decoder_status", {}),
        ("/api/v1/privacy", {}),
        ("/api/v1/version", {}),
        ("/api/v1/userinfo", {}),
        ("/api/v1/logs", {}),
    ):
        assert httpx.get(url + path, params=params, headers=auth).status_code == 200, path
    refused = [
        httpx.get(
            f"{url}/api/v1/tasks/{first}", headers={**proxy, "Authorization": f"Bearer {WRONG_KEY}"}
        ),
        httpx.get(f"{url}/api/v1/status", params={"task_id": first}, headers=proxy),
        httpx.get(f"{url}/api/v1/status", params={"task_id": "f" * 32}, headers=auth),
        httpx.post(
            f"{url}/api/v1/transcribe", files={"file": (clips["en"].name, b"text")}, headers=auth
        ),
        httpx.get(
            f"{url}/api/v1/login",
            params={"redirect": f"https://{CLIENT_IP}/{first}"},
            headers=proxy,
        ),
    ]
    assert [r.status_code for r in refused] == [401, 401, 404, 400, 303]
    for task_id in task_ids:
        deleted = httpx.delete(f"{url}/api/v1/tasks/{task_id}", headers=auth)
        assert deleted.status_code == 200
    texts += _exercise_compat_surfaces(url, clips, auth)
    return task_ids, texts


def _exercise_compat_surfaces(url: str, clips: dict[str, Path], auth: dict[str, str]) -> list[str]:
    """The OpenAI-compatible and whisper-asr-webservice routes, each once; their texts."""
    texts: list[str] = []
    for route, form in (
        ("/v1/audio/transcriptions", {"model": "whisper-1", "response_format": "verbose_json"}),
        ("/v1/audio/translations", {"model": "whisper-1", "response_format": "json"}),
    ):
        clip = clips["en"] if route.endswith("transcriptions") else clips["de"]
        with clip.open("rb") as audio:
            response = httpx.post(
                url + route,
                files={"file": (clip.name, audio)},
                data=form,
                headers=auth,
                timeout=120,
            )
        assert response.status_code == 200, response.text
        texts.append(response.json()["text"])
    with clips["en"].open("rb") as audio:
        asr = httpx.post(
            url + "/asr",
            params={"output": "txt", "language": "en"},
            files={"audio_file": (clips["en"].name, audio)},
            headers=auth,
            timeout=120,
        )
    assert asr.status_code == 200, asr.text
    texts.append(asr.text)
    with clips["de"].open("rb") as audio:
        detected = httpx.post(
            url + "/detect-language",
            files={"audio_file": (clips["de"].name, audio)},
            headers=auth,
            timeout=120,
        )
    assert detected.status_code == 200 and detected.json()["language_code"] == "de"
    assert httpx.get(url + "/v1/models", headers=auth).status_code == 200
    unauthorized = httpx.post(url + "/v1/audio/transcriptions", headers={"X-Email": EMAIL})
    assert unauthorized.status_code == 401 and "error" in unauthorized.json()
    return texts


def test_debug_logs_hold_no_content_or_identities_through_every_surface(tmp_path: Path) -> None:
    """DEBUG + privacy mode: stdout and log file show no words, names, ids, IPs, keys, mails."""
    log_dir = tmp_path / "logs"
    clips = {}
    for language, name in (("en", "en_jfk.flac"), ("de", "de_picovoice_test_de.wav")):
        secret = tmp_path / f"secret-board-meeting-{language}{Path(name).suffix}"
        secret.write_bytes(shared_clip(name).read_bytes())
        clips[language] = secret
    with served(
        tmp_path,
        LOG_LEVEL="DEBUG",
        LOG_PRIVACY_MODE="1",
        LOG_DIR=str(log_dir),
        LOG_FILE="whisper_api.log",
        API_KEYS=SECRET_KEY,
        TRUSTED_PROXIES="127.0.0.1",
        LOG_AUTHORIZED_MAILS=EMAIL,
        CPU_FALLBACK_MODEL="base",
    ) as server:
        task_ids, texts = _exercise_every_surface(server.url, clips)
    records = server.output
    log_file = (log_dir / "whisper_api.log").read_text(errors="replace")
    assert "job_finished" in records and "job_finished" in log_file  # the logs did capture
    assert "http_request" in records  # uvicorn's access log went through the pipeline
    words = _content_words(*texts)
    assert len(words) >= 10
    for text in (records, log_file):
        lowered = text.lower()
        assert not {word for word in words if word in lowered}
        assert "secret-board-meeting" not in lowered
        for task_id in task_ids:
            assert task_id not in lowered
        assert CLIENT_IP not in text
        assert SECRET_KEY not in text and WRONG_KEY not in text
        assert SECRET_KEY[-12:] not in text and "bearer" not in lowered
        assert EMAIL not in lowered and "alice" not in lowered
    assert task_ids[0][:4] + "…" + task_ids[0][-4:] in records  # shortened ids remain useful
