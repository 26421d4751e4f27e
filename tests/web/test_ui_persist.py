"""Jobs survive a reload: remembered in the browser, picked up again live, deletable in one go."""

from __future__ import annotations

import json

import httpx
import pytest
from playwright.sync_api import expect

from app.bench.runner import word_error_rate
from tests.conftest import reference_text, shared_clip
from tests.server_process import Server, server_upload, server_wait_status
from tests.web.conftest import UIFactory
from tests.web.test_ui import (
    FINISHED_TIMEOUT_MS,
    assert_gone_on_server,
    job_row,
    transcript_text,
    upload_task_id,
)

pytestmark = [pytest.mark.real_model, pytest.mark.browser]


def test_reload_keeps_finished_and_queued_jobs_and_delete_all_erases_them(
    ui_server: Server, open_ui: UIFactory
) -> None:
    """After F5 and in a new tab: the finished job's transcript again, the queued job live."""
    ui = open_ui(ui_server)
    page = ui.open()
    jfk = shared_clip("en_jfk.flac")
    finished_id = upload_task_id(page, lambda: page.set_input_files("#file-input", str(jfk)))
    expect(job_row(page, jfk.name)).to_have_attribute(
        "data-state", "finished", timeout=FINISHED_TIMEOUT_MS
    )

    # Keep the worker busy, so the page's next file has to wait in the queue.
    long_clip = shared_clip("en_longform_tedlium_120s.flac")
    blocker_id = server_upload(ui_server.url, "/api/v1/transcribe", long_clip).json()["task_id"]
    server_wait_status(ui_server.url, blocker_id, "processing")
    clip = shared_clip("en_ls-test-clean_1089-134691-0000.flac")
    queued_id = upload_task_id(page, lambda: page.set_input_files("#file-input", str(clip)))
    queued = job_row(page, clip.name)
    expect(queued.locator(".job-status")).to_have_text("Waiting: next in line.")

    remembered = json.loads(page.evaluate("localStorage.getItem('whisper-api:jobs')"))
    assert [record["taskId"] for record in remembered] == [finished_id, queued_id]
    assert remembered[0]["name"] == jfk.name and remembered[0]["options"]["task"] == "transcribe"
    assert "country" not in page.evaluate("JSON.stringify(localStorage)").lower()  # no text kept
    # One more the server has long forgotten: the page drops it quietly after the reload.
    page.evaluate(
        """() => {
            const list = JSON.parse(localStorage.getItem('whisper-api:jobs'));
            list.unshift({taskId: 'f'.repeat(32), name: 'old.mp3', size: 1, options: {},
                          addedAt: '2020-01-01T00:00:00Z', keyTag: ''});
            localStorage.setItem('whisper-api:jobs', JSON.stringify(list));
        }"""
    )

    with page.expect_response(lambda r: f"/tasks/{finished_id}/result" in r.url) as refetched:
        page.reload()
    page.wait_for_selector("html[data-ready='yes']")
    assert refetched.value.status == 200
    finished = job_row(page, jfk.name)
    expect(finished).to_have_attribute("data-state", "finished")
    expect(page.locator("#viewer-name")).to_have_text(jfk.name)
    assert word_error_rate(reference_text(jfk.name), transcript_text(page)) <= 0.15
    expect(page.locator("#player")).to_be_hidden()  # the audio stayed with the earlier page
    expect(finished).to_have_attribute("aria-current", "true")  # the open file is marked
    expect(queued).to_have_attribute("data-state", "queued")
    expect(page.locator(".job")).to_have_count(2)
    expect(page.locator("#jobs-restored")).to_contain_text("1 earlier result had expired")

    # A new tab of the same browser finds the same jobs.
    other = ui.context.new_page()
    other.goto(ui_server.url + "/")
    expect(job_row(other, jfk.name)).to_have_attribute("data-state", "finished")
    expect(job_row(other, clip.name)).to_have_attribute("data-state", "queued")
    other.close()

    # The queued job runs once the worker is free, and the restored row follows it live.
    assert httpx.delete(f"{ui_server.url}/api/v1/tasks/{blocker_id}", timeout=10).is_success
    expect(queued).to_have_attribute("data-state", "finished", timeout=FINISHED_TIMEOUT_MS)
    states = [entry["state"] for entry in ui.trail(clip.name)]
    assert states.index("queued") < states.index("finished")

    page.click("#delete-all")
    expect(page.locator("#confirm-text")).to_contain_text("cannot be undone")
    page.click("#confirm-ok")
    expect(page.locator(".job")).to_have_count(0)
    expect(page.locator("#viewer")).to_be_hidden()
    for task_id in (finished_id, queued_id):
        assert_gone_on_server(ui_server, task_id)
    assert page.evaluate("localStorage.getItem('whisper-api:jobs')") == "[]"
