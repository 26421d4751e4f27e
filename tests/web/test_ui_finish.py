"""The page finished (issue 26): word spacing, models, new results, honest hints, tabs in step,
layout, and the small things of Record and Live. Chromium, real server, real bundled model."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, ViewportSize, expect

from tests.conftest import shared_clip
from tests.server_process import Server
from tests.web.conftest import (
    PHONE,
    UIFactory,
    launch_with_microphone,
    open_options,
    wait_in_page,
)
from tests.web.test_ui import FINISHED_TIMEOUT_MS, job_row

pytestmark = [pytest.mark.real_model, pytest.mark.browser]

JFK = "en_jfk.flac"
LAPTOP = ViewportSize(width=1366, height=900)
SELECTED_TEXT = """(selector) => {
  const range = document.createRange();
  range.selectNodeContents(document.querySelector(selector));
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
  return selection.toString();
}"""
COLOR_OF_ACCENT = """() => {
  const probe = document.createElement("span");
  probe.style.color = "var(--accent)";
  document.body.append(probe);
  const color = getComputedStyle(probe).color;
  probe.remove();
  return color;
}"""


def upload(page: Page, clip: str) -> Any:
    """Add one shared clip through the file input; its row."""
    path = shared_clip(clip)
    page.set_input_files("#file-input", str(path))
    return job_row(page, path.name)


def finished(row: Any) -> None:
    expect(row.first).to_have_attribute("data-state", "finished", timeout=FINISHED_TIMEOUT_MS)


def remembered(page: Page, records: list[dict[str, Any]]) -> None:
    """Seed the page's remembered jobs before its script runs."""
    page.add_init_script(
        f"localStorage.setItem('whisper-api:jobs', {json.dumps(json.dumps(records))});"
    )


# ---------------------------------------------------------------- 1: word timestamps


def test_word_timestamps_read_and_copy_with_spaces(ui_server: Server, open_ui: UIFactory) -> None:
    """Word buttons show and copy with spaces between the words ("AndsomyfellowAmericans")."""
    page = open_ui(ui_server).open()
    open_options(page)
    page.check("#word-timestamps")
    finished(upload(page, JFK))
    expect(page.locator("#segments .word").first).to_be_visible()
    shown = page.locator("#segments .segment-text").first.inner_text()
    assert re.search(r"\bfellow americans\b", shown.lower()), shown
    copied = page.evaluate(SELECTED_TEXT, "#segments .segment-text")
    assert re.search(r"\bask not what your country\b", copied.lower()), copied


# ---------------------------------------------------------------- 2: models


def test_model_list_holds_what_uploads_accept_and_the_row_says_what_ran(
    ui_server: Server, open_ui: UIFactory
) -> None:
    """No OpenAI names in the list, every accepted one offered; the row tells the model that ran."""
    page = open_ui(ui_server).open()
    open_options(page)
    expect(page.locator("#model option", has_text="base.en")).to_have_count(1)
    options = page.locator("#model option").all_inner_texts()
    assert "whisper-1" not in options and not any(o.startswith("gpt-") for o in options)
    assert {"tiny", "tiny.en", "base", "base.en"} <= set(options), options
    # tiny.en cannot detect a language: the server runs a multilingual model, and says which.
    page.select_option("#model", "tiny.en")
    row = upload(page, JFK)
    finished(row)
    used = httpx.get(
        f"{ui_server.url}/api/v1/tasks/{page.evaluate(TASK_IDS)[0]}", timeout=10
    ).json()["used_model_size"]
    assert used != "tiny.en"
    expect(row.locator(".job-meta")).to_contain_text(f"tiny.en asked, {used} ran")


TASK_IDS = "JSON.parse(localStorage.getItem('whisper-api:jobs')).map((r) => r.taskId)"


# ---------------------------------------------------------------- 5: new results


def test_new_result_opens_on_top_and_same_names_differ(
    ui_server: Server, open_ui: UIFactory
) -> None:
    """A second upload of the same file goes to the top, opens when done, and its row differs."""
    page = open_ui(ui_server).open()
    first = upload(page, JFK)
    finished(first)
    expect(page.locator("#viewer")).to_be_visible()
    page.wait_for_timeout(1100)  # a second later: the rows show different times added
    page.set_input_files("#file-input", str(shared_clip(JFK)))
    rows = page.locator(".job")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("data-state", "finished", timeout=FINISHED_TIMEOUT_MS)
    # The newest row is first, and it is the one open now.
    expect(rows.nth(0)).to_have_class(re.compile(r"\bis-open\b"))
    expect(rows.nth(1)).not_to_have_class(re.compile(r"\bis-open\b"))
    metas = rows.locator(".job-meta").all_inner_texts()
    assert metas[0] != metas[1] and all("added" in meta for meta in metas), metas
    expect(page.locator("#viewer-summary")).to_contain_text(metas[0].rsplit("added ", 1)[1].strip())


# ---------------------------------------------------------------- 6: honest hints


def test_after_reload_times_are_labels_and_hints_say_so(
    ui_server: Server, open_ui: UIFactory
) -> None:
    """Without the recording, times do not look like links and the help does not offer playing."""
    ui = open_ui(ui_server)
    page = ui.open()
    finished(upload(page, JFK))
    expect(page.locator("#viewer-help")).to_contain_text("to play from there")
    page.reload()
    page.wait_for_selector("html[data-ready='yes']")
    expect(page.locator("#viewer")).to_be_visible(timeout=30_000)
    expect(page.locator("#viewer-help")).not_to_contain_text("play")
    time_label = page.locator("#segments span.segment-time").first
    expect(time_label).to_be_visible()
    accent = page.evaluate(COLOR_OF_ACCENT)
    assert time_label.evaluate("(node) => getComputedStyle(node).color") != accent


def test_kept_live_task_and_a_restarted_server_are_named_as_such(
    ui_server: Server, open_ui: UIFactory
) -> None:
    """A kept Live task has no "added before reload"; a young result gone is no "expired" one."""
    with shared_clip(JFK).open("rb") as audio:
        task_id = httpx.post(
            f"{ui_server.url}/api/v1/transcribe", files={"file": (JFK, audio)}, timeout=60
        ).json()["task_id"]
    ui = open_ui(ui_server)
    minute_ago = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    remembered(
        ui.page,
        [
            {
                "taskId": task_id,
                "name": "Live transcript",
                "size": 0,
                "options": {},
                "addedAt": minute_ago,
                "keyTag": "",
                "kind": "live",
            },
            {
                "taskId": "0123456789abcdef0123456789abcdef",
                "name": "old.flac",
                "size": 1,
                "options": {},
                "addedAt": minute_ago,
                "keyTag": "",
            },
        ],
    )
    page = ui.open()
    finished(job_row(page, "Live transcript"))
    expect(page.locator("#viewer-note")).to_contain_text("live transcript keeps no recording")
    expect(page.locator("#viewer-note")).not_to_contain_text("reloaded")
    restored = page.locator("#jobs-restored")
    expect(restored).to_contain_text("no longer on the server")
    expect(restored).not_to_contain_text("expired")


# ---------------------------------------------------------------- 7: tabs in step


def test_tabs_agree_on_cancel_and_delete_all(ui_server: Server, open_ui: UIFactory) -> None:
    """Cancelled in tab B shows as cancelled in A; "Delete all mine" in A clears B's rows."""
    ui = open_ui(ui_server)
    a = ui.open()
    done = upload(a, JFK)
    finished(done)
    long_row = upload(a, "en_longform_tedlium_120s.flac")
    expect(long_row).to_have_attribute(
        "data-state", re.compile("queued|processing"), timeout=60_000
    )
    b = ui.context.new_page()
    b.goto(ui_server.url + "/")
    b.wait_for_selector("html[data-ready='yes']")
    b_long = job_row(b, "en_longform_tedlium_120s.flac")
    expect(b_long).to_have_attribute("data-state", re.compile("queued|processing"), timeout=30_000)
    b_long.locator(".action-cancel").click()
    expect(b_long).to_have_attribute("data-state", "cancelled")
    expect(long_row).to_have_attribute("data-state", "cancelled", timeout=15_000)
    expect(long_row.locator(".job-status")).not_to_contain_text("could not finish")

    b_done = job_row(b, JFK)
    finished(b_done)
    a.click("#delete-all")
    a.click("#confirm-ok")
    expect(done).to_have_count(0)
    expect(b_done).to_have_attribute("data-state", "deleted", timeout=15_000)
    b.close()


# ---------------------------------------------------------------- 9: layout


def test_long_transcript_layout_on_a_laptop_and_a_phone(
    ui_server: Server, open_ui: UIFactory
) -> None:
    """1366x900: transcript lines in view, no gap above Privacy, "Shown on the right"; phone:
    "Shown below" and the finished transcript brought into view."""
    page = open_ui(ui_server, viewport=LAPTOP).open()
    finished(upload(page, "en_longform_tedlium_120s.flac"))
    expect(page.locator("#viewer")).to_be_visible()
    assert page.evaluate("window.scrollY") == 0
    first_line = page.locator("#segments .segment").first.bounding_box()
    assert first_line and first_line["y"] + first_line["height"] <= LAPTOP["height"] - 100
    jobs = page.locator(".jobs-card").bounding_box()
    privacy = page.locator(".privacy").bounding_box()
    assert jobs and privacy and privacy["y"] - (jobs["y"] + jobs["height"]) < 40
    expect(page.locator(".job-open-mark")).to_have_text("Shown on the right", use_inner_text=True)

    phone = open_ui(ui_server, phone=True).open()
    finished(upload(phone, JFK))
    expect(phone.locator(".job-open-mark")).to_have_text("Shown below", use_inner_text=True)
    wait_in_page(
        phone,
        "() => { const box = document.getElementById('viewer-heading').getBoundingClientRect();"
        " return box.top >= 0 && box.bottom <= window.innerHeight; }",
    )
    assert PHONE["width"] == 390


def test_chosen_options_do_not_hide_the_new_transcript(
    ui_server: Server, open_ui: UIFactory
) -> None:
    """Options opened and a box ticked before choosing a file: the panel folds, the laptop shows
    the first line well above the fold, and the phone still brings the transcript into view."""
    page = open_ui(ui_server, viewport=LAPTOP).open()
    open_options(page)
    page.check("#word-timestamps")  # the checkbox keeps the focus, as after a click
    finished(upload(page, JFK))
    expect(page.locator("#options-panel")).not_to_have_attribute("open", "")
    first_line = page.locator("#segments .segment").first.bounding_box()
    assert first_line and first_line["y"] + first_line["height"] <= LAPTOP["height"] - 100

    phone = open_ui(ui_server, phone=True).open()
    open_options(phone)
    phone.check("#word-timestamps")
    finished(upload(phone, JFK))
    wait_in_page(
        phone,
        "() => { const box = document.getElementById('viewer-heading').getBoundingClientRect();"
        " return box.top >= 0 && box.bottom <= window.innerHeight; }",
    )


# ---------------------------------------------------------------- 10: Record, Live, key button


def test_live_is_explained_and_no_key_button_without_keys(
    ui_server: Server, open_ui: UIFactory
) -> None:
    """Live has an icon and a line saying what it does; "API key…" only where keys are used."""
    page = open_ui(ui_server).open()
    live = page.locator("#live-button")
    expect(live.locator("svg")).to_have_count(1)
    hint = page.locator("#" + (live.get_attribute("aria-describedby") or "missing"))
    expect(hint).to_contain_text("while you speak")
    expect(page.locator("#key-button")).to_be_hidden()


@pytest.fixture(scope="module")
def speaking_browser(playwright_session: Playwright) -> Iterator[Browser]:
    """Chromium whose microphone plays a short clip, permission granted."""
    browser = launch_with_microphone(playwright_session, shared_clip("en_ljspeech_LJ001-0004.wav"))
    yield browser
    browser.close()


def test_record_shows_a_level_meter(
    ui_server: Server, open_ui: UIFactory, speaking_browser: Browser
) -> None:
    """While recording, a meter shows that the microphone hears something."""
    page = open_ui(ui_server, on=speaking_browser).open()
    page.click("#record-button")
    meter = page.locator("#record-level")
    expect(meter).to_be_visible()
    wait_in_page(page, "() => document.getElementById('record-level').value > 0.05")
    page.click("#record-cancel")


def test_live_sends_audio_through_an_audio_worklet(
    ui_server: Server, open_ui: UIFactory, speaking_browser: Browser
) -> None:
    """Live mode streams the microphone without the deprecated ScriptProcessorNode."""
    ui = open_ui(ui_server, on=speaking_browser)
    page = ui.page
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    appends: list[int] = []

    def watch(socket: Any) -> None:
        socket.on(
            "framesent",
            lambda payload: (
                appends.append(1) if "input_audio_buffer.append" in str(payload) else None
            ),
        )

    page.on("websocket", watch)
    ui.open()
    page.click("#live-button")
    expect(page.locator("#live-status")).to_contain_text("Listening", timeout=30_000)
    deadline = time.monotonic() + 20
    while len(appends) < 3 and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    page.click("#live-stop")
    assert len(appends) >= 3
    assert not [text for text in console if "ScriptProcessor" in text], console
