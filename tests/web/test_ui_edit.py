"""The viewer: lines edited in place, speaker names, a sticky player that follows playback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import srt
from playwright.sync_api import Page, Route, expect

from tests.conftest import shared_clip
from tests.server_process import Server
from tests.web.conftest import UIFactory, wait_in_page
from tests.web.test_ui import FINISHED_TIMEOUT_MS, job_row

pytestmark = [pytest.mark.real_model, pytest.mark.browser]

EDITED = "Printing, in the only sense with which we are at present concerned, edited by hand."


def rewrite_result(page: Page, change: Any) -> None:
    """Let `change(body)` alter the server's JSON result on its way to the page."""

    def handle(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        change(body)
        route.fulfill(response=response, body=json.dumps(body))

    page.route("**/result?format=json", handle)


def test_edits_and_speaker_names_reach_copy_and_downloads_and_survive_reload(
    ui_server: Server, open_ui: UIFactory
) -> None:
    """An edited line is marked, kept after reload, and used by copy and the SRT download."""
    ui = open_ui(ui_server)
    ui.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = ui.page

    def label_speakers(body: dict[str, Any]) -> None:
        for number, segment in enumerate(body["segments"]):
            segment["speaker"] = f"SPEAKER_0{number % 2}"

    rewrite_result(page, label_speakers)
    ui.open()
    clip = shared_clip("en_ljspeech_LJ001-0001.wav")
    page.set_input_files("#file-input", str(clip))
    expect(job_row(page, clip.name)).to_have_attribute(
        "data-state", "finished", timeout=FINISHED_TIMEOUT_MS
    )
    line = page.locator("#segments .segment").first
    original = line.locator(".segment-text").inner_text()

    # Escape leaves the line as it was.
    line.locator(".segment-edit").click()
    editor = page.locator(".segment-editor")
    expect(editor).to_be_focused()
    editor.fill("nothing of the sort")
    editor.press("Escape")
    expect(line.locator(".segment-text")).to_have_text(original)
    expect(line.locator(".edited-mark")).to_have_count(0)

    line.locator(".segment-edit").click()
    page.locator(".segment-editor").fill(EDITED)
    page.locator(".segment-editor").press("Enter")
    expect(line.locator(".segment-text")).to_have_text(EDITED)
    expect(line.locator(".edited-mark")).to_have_text("Edited here")
    expect(line.locator(".segment-edit")).to_be_focused()

    expect(page.locator("#speakers")).to_be_visible()
    expect(line.locator(".speaker-chip")).to_have_text("SPEAKER_00")
    page.fill("#speaker-0", "Ada")
    page.locator("#speaker-0").press("Tab")
    expect(line.locator(".speaker-chip")).to_have_text("Ada")

    posts_before = len(ui.guard.seen)
    with page.expect_download() as download:
        page.click("#viewer [data-format='srt']")
    assert download.value.suggested_filename == "en_ljspeech_LJ001-0001.srt"
    cues = list(srt.parse(Path(download.value.path()).read_text(encoding="utf-8")))
    assert cues[0].content == f"Ada: {EDITED}"
    assert len(ui.guard.seen) == posts_before  # built in the page, from the edited lines

    page.click("#copy-button")
    expect(page.locator("#copy-button")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()").startswith(f"Ada: {EDITED}")

    page.reload()
    page.wait_for_selector("html[data-ready='yes']")
    expect(line.locator(".segment-text")).to_have_text(EDITED)
    expect(line.locator(".speaker-chip")).to_have_text("Ada")

    # Deleting the result forgets the edits too.
    page.click("#delete-button")
    page.click("#confirm-ok")
    expect(page.locator("#viewer")).to_be_hidden()
    assert "edits" not in page.evaluate("Object.keys(localStorage).join(' ')")


def test_player_stays_in_reach_and_follows_the_playing_line(
    ui_server: Server, open_ui: UIFactory
) -> None:
    """On a long transcript the player stays on screen; the playing line scrolls into view."""
    ui = open_ui(ui_server)
    page = ui.page

    def many_lines(body: dict[str, Any]) -> None:
        # Sixty short lines over the clip: long enough to scroll, timed within the audio.
        body["segments"] = [
            {"id": n, "start": n * 0.18, "end": (n + 1) * 0.18, "text": f" Line number {n}."}
            for n in range(60)
        ]

    rewrite_result(page, many_lines)
    ui.open()
    clip = shared_clip("en_jfk.flac")
    page.set_input_files("#file-input", str(clip))
    expect(job_row(page, clip.name)).to_have_attribute(
        "data-state", "finished", timeout=FINISHED_TIMEOUT_MS
    )
    expect(page.locator("#segments .segment")).to_have_count(60)
    expect(page.locator("#follow")).to_be_checked()

    def play_at(seconds: float) -> None:
        page.evaluate(
            "(t) => { const p = document.getElementById('player'); p.currentTime = t; p.play(); }",
            seconds,
        )
        wait_in_page(page, "document.querySelector('.segment.is-current') !== null")

    page.evaluate("window.scrollTo({top: 0, behavior: 'instant'})")
    play_at(9.5)
    wait_in_page(
        page,
        """() => { const r = document.querySelector('.segment.is-current').getBoundingClientRect();
                   return r.top >= 0 && r.bottom <= innerHeight; }""",
    )
    player = page.locator("#player").bounding_box()
    assert player is not None and 0 <= player["y"] < 900  # the sticky player is still on screen
    page.evaluate("document.getElementById('player').pause()")

    page.uncheck("#follow")
    page.evaluate("window.scrollTo({top: 0, behavior: 'instant'})")
    play_at(9.0)
    page.wait_for_timeout(600)
    # Following is off: the page does not jump to the playing line, which stays out of view.
    assert page.evaluate("window.scrollY") < 100
    assert page.evaluate(
        "document.querySelector('.segment.is-current').getBoundingClientRect().top > innerHeight"
    )
    page.evaluate("document.getElementById('player').pause()")
    page.reload()
    page.wait_for_selector("html[data-ready='yes']")
    expect(page.locator("#follow")).not_to_be_checked()  # the choice is remembered
