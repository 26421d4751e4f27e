"""The real `whisper-api` process on a loopback port, as a user starts it."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import reference_text, shared_clip, word_error_rate
from tests.server_process import start_server, upload, wait_final

pytestmark = pytest.mark.real_model


def test_fresh_server_transcribes_jfk_offline(server_factory: Any) -> None:
    """Default settings: the server answers on loopback and jfk comes back within 10% WER."""
    server = server_factory()
    response = upload(server.url, "/api/v1/transcribe", shared_clip("en_jfk.flac"))
    assert response.status_code == 200
    body = wait_final(server.url, response.json()["task_id"])
    assert body["status"] == "finished"
    assert word_error_rate(reference_text("en_jfk.flac"), body["transcript"]) <= 0.10


def test_six_simultaneous_uploads_with_queue_of_two(server_factory: Any) -> None:
    """MAX_TASK_QUEUE_SIZE=2: extra uploads get 429 at once; every accepted task finishes."""
    server = server_factory(MAX_TASK_QUEUE_SIZE="2")
    clip = shared_clip("en_ls-test-clean_1089-134686-0001.flac")
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(
            pool.map(lambda _: upload(server.url, "/api/v1/transcribe", clip), range(6))
        )
    accepted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(accepted) + len(refused) == 6
    assert 2 <= len(accepted) <= 3  # two waiting, plus one already running
    assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
    for response in accepted:
        assert wait_final(server.url, response.json()["task_id"])["status"] == "finished"


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


def test_debug_logs_hold_no_words_file_names_or_task_ids(tmp_path: Path) -> None:
    """At DEBUG, neither stdout nor the log file shows transcript words, file names or task ids."""
    log_dir = tmp_path / "logs"
    server = start_server(
        tmp_path, LOG_LEVEL="DEBUG", LOG_DIR=str(log_dir), LOG_FILE="whisper_api.log"
    )
    try:
        server.wait_ready()
        secret_clip = tmp_path / "secret-board-meeting.flac"
        secret_clip.write_bytes(shared_clip("en_jfk.flac").read_bytes())
        task_id = upload(server.url, "/api/v1/transcribe", secret_clip).json()["task_id"]
        body = wait_final(server.url, task_id)
        assert body["status"] == "finished"
        httpx.get(server.url + f"/api/v1/tasks/{task_id}/result", params={"format": "srt"})
    finally:
        server.process.terminate()
        server.process.wait(timeout=20)
    records = server.log_path.read_text(errors="replace")
    log_file = (log_dir / "whisper_api.log").read_text(errors="replace")
    assert "job_finished" in records and "job_finished" in log_file  # the logs did capture
    for text in (records, log_file):
        lowered = text.lower()
        for word in ("americans", "country", "fellow"):
            assert word not in lowered
        assert "secret-board-meeting" not in lowered
        assert task_id not in lowered
        assert task_id[:4] + "…" + task_id[-4:] in text  # shortened ids remain useful
