"""The UI when the server says no: a full queue (429) and an upload over the size limit (413)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import shared_clip
from tests.server_process import Server, server_upload, server_wait_status
from tests.web.conftest import UIFactory, ui_served

pytestmark = [pytest.mark.real_model, pytest.mark.browser]

MAX_UPLOAD_MB = 3


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with room for one waiting job and uploads up to 3 MB."""
    with ui_served(
        tmp_path_factory.mktemp("small-server"),
        MAX_TASK_QUEUE_SIZE="1",
        MAX_UPLOAD_MB=str(MAX_UPLOAD_MB),
    ) as server:
        yield server


def test_upload_over_the_limit_is_explained(
    small_server: Server, open_ui: UIFactory, tmp_path: Path
) -> None:
    """A file over MAX_UPLOAD_MB gets "too large" with the server's limit, not a silent failure."""
    ui = open_ui(small_server)
    page = ui.open()
    big = tmp_path / "long-meeting.wav"
    big.write_bytes(b"\0" * (MAX_UPLOAD_MB + 1) * 1024 * 1024)
    page.set_input_files("#file-input", str(big))
    row = page.locator(".job")
    expect(row).to_have_attribute("data-state", "rejected", timeout=30_000)
    expect(row.locator(".job-status")).to_have_text("Too large for this server.")
    expect(row.locator(".job-detail")).to_contain_text(f"limit of {MAX_UPLOAD_MB} MB")


def test_full_queue_says_so_counts_down_and_retries(
    small_server: Server, open_ui: UIFactory
) -> None:
    """A full queue: the row says so and when it retries, then gets through once there is room."""
    blocker = server_upload(
        small_server.url, "/api/v1/transcribe", shared_clip("en_longform_tedlium_120s.flac")
    )
    blocker_id = blocker.json()["task_id"]
    server_wait_status(small_server.url, blocker_id, "processing")
    waiting = server_upload(
        small_server.url,
        "/api/v1/transcribe",
        shared_clip("en_ls-test-clean_1089-134691-0000.flac"),
    )
    assert waiting.status_code == 200  # the one waiting slot is now taken

    ui = open_ui(small_server)
    page = ui.open()
    clip = shared_clip("en_ls-test-clean_1089-134686-0001.flac")
    with page.expect_response(lambda r: r.url.endswith("/api/v1/transcribe")) as refused:
        page.set_input_files("#file-input", str(clip))
    assert refused.value.status == 429
    retry_after = int(refused.value.headers["retry-after"])

    row = page.locator(".job")
    expect(row).to_have_attribute("data-state", "retry-wait")
    expect(row.locator(".job-status")).to_contain_text("The server's queue is full")
    expect(row.locator(".job-status")).to_contain_text("Trying again in")
    expect(row.locator(".action-retry")).to_be_visible()
    expect(page.locator("#announcer")).to_contain_text("queue is full")

    # Room again: the page sends the file by itself once Retry-After has passed.
    for task_id in (blocker_id, waiting.json()["task_id"]):
        assert httpx.delete(f"{small_server.url}/api/v1/tasks/{task_id}", timeout=10).is_success
    expect(row).to_have_attribute("data-state", "finished", timeout=(retry_after + 60) * 1000)
    states = [entry["state"] for entry in ui.trail(clip.name)]
    assert states.index("retry-wait") < states.index("finished")
