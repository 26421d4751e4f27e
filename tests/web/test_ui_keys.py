"""API keys in the page: needed said up front, a wrong key named as such, jobs kept per key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import shared_clip
from tests.server_process import Server, served
from tests.web.conftest import UIFactory
from tests.web.test_ui import FINISHED_TIMEOUT_MS, job_row

pytestmark = [pytest.mark.real_model, pytest.mark.browser]

KEY = "first-key-0123456789"
NOT_ACCEPTED = "That key was not accepted. Check it and try again."
OTHER_KEY = "second-key-0123456789"


@pytest.fixture(scope="module")
def key_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that takes work only with one of two API keys."""
    with served(
        tmp_path_factory.mktemp("key-server"),
        CPU_FALLBACK_MODEL="base",
        API_KEYS=f"{KEY},{OTHER_KEY}",
    ) as server:
        yield server


def enter_key(page: Page, key: str) -> None:
    """Type a key into the open dialog and submit it."""
    page.fill("#key-input", key)
    page.click("#key-save")


def test_key_needed_wrong_key_and_jobs_of_each_key(key_server: Server, open_ui: UIFactory) -> None:
    """Up-front notice; "not accepted" for a wrong key; "Key in use" only after it worked."""
    ui = open_ui(key_server)
    page = ui.open()
    expect(page.locator("#key-notice")).to_contain_text("needs an API key")
    expect(page.locator("#key-state")).to_have_text("Key needed")
    expect(page.locator("#privacy-list")).to_have_attribute("data-loaded", "yes")

    clip = shared_clip("en_ls-test-clean_1089-134686-0001.flac")
    page.set_input_files("#file-input", str(clip))
    row = job_row(page, clip.name)
    expect(row).to_have_attribute("data-state", "needs-key")
    expect(row.locator(".job-status")).to_have_text("This server needs an API key.")
    expect(page.locator("#key-dialog")).to_be_visible()

    enter_key(page, "not-a-key")
    expect(page.locator("#key-error")).to_have_text(NOT_ACCEPTED)
    expect(page.locator("#key-input")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#key-dialog")).to_be_visible()
    expect(page.locator("#key-state")).to_have_text("Key not accepted")
    assert page.evaluate("sessionStorage.getItem('whisper-api:api-key')") is None

    enter_key(page, KEY)
    expect(page.locator("#key-dialog")).to_be_hidden()
    expect(page.locator("#key-state")).to_have_text("Key in use")
    expect(page.locator("#key-notice")).to_be_hidden()
    expect(row).to_have_attribute("data-state", "finished", timeout=FINISHED_TIMEOUT_MS)
    assert KEY not in page.evaluate("JSON.stringify(localStorage)")

    # The other key sees none of the first key's jobs; back to the first, they return.
    page.click("#key-button")
    enter_key(page, OTHER_KEY)
    expect(page.locator("#key-state")).to_have_text("Key in use")
    expect(page.locator(".job")).to_have_count(0)
    page.click("#key-button")
    enter_key(page, KEY)
    expect(row).to_have_attribute("data-state", "finished")

    # A reload in the same tab keeps the key (this tab only) and the job.
    page.reload()
    page.wait_for_selector("html[data-ready='yes']")
    expect(page.locator("#key-state")).to_have_text("Key in use")
    expect(job_row(page, clip.name)).to_have_attribute("data-state", "finished")


def test_a_key_that_stops_working_is_named(key_server: Server, open_ui: UIFactory) -> None:
    """A key kept in the tab that the server refuses: the header and dialog say so at load."""
    ui = open_ui(key_server)
    ui.context.add_init_script("sessionStorage.setItem('whisper-api:api-key', 'revoked-key')")
    page = ui.open()
    expect(page.locator("#key-state")).to_have_text("Key not accepted")
    expect(page.locator("#key-dialog")).to_be_visible()
    expect(page.locator("#key-error")).to_have_text(NOT_ACCEPTED)
    expect(page.locator("#key-notice")).to_contain_text("not accepted")


def test_a_key_shared_with_every_tab_serves_a_new_tab(
    key_server: Server, open_ui: UIFactory
) -> None:
    """Asked to serve every tab, a key entered once shows a new tab its jobs without typing;
    without that choice a new tab still asks for it."""
    ui = open_ui(key_server)
    page = ui.open()
    expect(page.locator("#key-button")).to_be_visible()  # this server takes keys
    clip = shared_clip("en_ls-test-clean_1089-134686-0001.flac")
    page.click("#key-button")
    page.fill("#key-input", KEY)
    page.check("#key-share")
    page.click("#key-save")
    expect(page.locator("#key-state")).to_have_text("Key in use")
    page.set_input_files("#file-input", str(clip))
    expect(job_row(page, clip.name)).to_have_attribute(
        "data-state", "finished", timeout=FINISHED_TIMEOUT_MS
    )

    second = ui.context.new_page()
    second.goto(key_server.url + "/")
    second.wait_for_selector("html[data-ready='yes']")
    expect(second.locator("#key-state")).to_have_text("Key in use")
    expect(job_row(second, clip.name)).to_have_attribute("data-state", "finished")
    assert KEY not in second.evaluate("JSON.stringify(localStorage)")

    # "Forget the key" in one tab forgets the shared key in the others too.
    second.click("#key-button")
    second.click("#key-forget")
    expect(page.locator("#key-state")).to_have_text("Key needed")
    second.close()

    # Not shared: a new tab of the same browser asks again.
    page.click("#key-button")
    page.fill("#key-input", KEY)
    page.click("#key-save")
    expect(page.locator("#key-state")).to_have_text("Key in use")
    third = ui.context.new_page()
    third.goto(key_server.url + "/")
    third.wait_for_selector("html[data-ready='yes']")
    expect(third.locator("#key-state")).to_have_text("Key needed")
    third.close()
