"""Desktop and phone layouts, light and dark: upload first, no serious accessibility finding."""

from __future__ import annotations

from typing import Literal

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import shared_clip
from tests.server_process import Server
from tests.web.conftest import PHONE, UIFactory, accessibility_violations, open_options, screenshot
from tests.web.test_ui import FINISHED_TIMEOUT_MS, job_row

pytestmark = [pytest.mark.real_model, pytest.mark.browser]


def box(page: Page, selector: str) -> dict[str, float]:
    """The element's box on the page, which must be laid out."""
    found = page.locator(selector).bounding_box()
    assert found is not None, selector
    return dict(found)


def transcribe_jfk(page: Page) -> None:
    """Add the JFK clip and wait until its transcript is open."""
    clip = shared_clip("en_jfk.flac")
    page.set_input_files("#file-input", str(clip))
    expect(job_row(page, clip.name)).to_have_attribute(
        "data-state", "finished", timeout=FINISHED_TIMEOUT_MS
    )
    expect(page.locator("#viewer")).to_be_visible()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_desktop_leads_with_a_wide_drop_zone(
    ui_server: Server, open_ui: UIFactory, scheme: Literal["light", "dark"]
) -> None:
    """At 1440×900 the drop zone spans the page at the top; list and transcript side by side."""
    page = open_ui(ui_server, color_scheme=scheme).open()
    zone, main = box(page, "#dropzone"), box(page, "main")
    assert zone["y"] < 200 and zone["width"] > 0.9 * main["width"]
    assert box(page, "label[for='file-input']")["y"] + 48 < 900  # the main action above the fold
    assert accessibility_violations(page) == []
    screenshot(page, f"ui-desktop-{scheme}-start.png")

    open_options(page)
    assert accessibility_violations(page) == []
    page.click("#options-panel summary")  # folds back into one line

    transcribe_jfk(page)
    jobs, viewer = box(page, ".jobs-card"), box(page, "#viewer")
    assert jobs["x"] + jobs["width"] <= viewer["x"] and abs(jobs["y"] - viewer["y"]) < 2
    assert viewer["width"] > 1.5 * jobs["width"]  # the transcript gets the room
    assert accessibility_violations(page) == []
    screenshot(page, f"ui-desktop-{scheme}.png")

    # No keys on this server: no "API key…" button; the dialog itself is still checked.
    expect(page.locator("#key-button")).to_be_hidden()
    page.evaluate("document.getElementById('key-dialog').showModal()")
    assert accessibility_violations(page) == []
    page.keyboard.press("Escape")
    page.click("#delete-button")
    assert accessibility_violations(page) == []
    page.click("#confirm-cancel")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_phone_leads_with_choose_files(
    ui_server: Server, open_ui: UIFactory, scheme: Literal["light", "dark"]
) -> None:
    """On a touch phone: "Choose files" on the first screen, no "drop" wording, no side scroll."""
    page = open_ui(ui_server, phone=True, color_scheme=scheme).open()
    choose = box(page, "label[for='file-input']")
    assert choose["y"] + choose["height"] <= PHONE["height"] / 2
    assert choose["width"] >= 0.8 * PHONE["width"] - 80  # a wide, easy target
    expect(page.locator(".for-touch")).to_be_visible()
    expect(page.locator(".for-mouse")).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert accessibility_violations(page) == []
    screenshot(page, f"ui-phone-{scheme}-start.png", full_page=False)

    transcribe_jfk(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    # One column: the files, then the transcript, then the privacy notice.
    # Measured at one moment, in page coordinates: the page may be scrolling to the transcript.
    tops = page.evaluate(
        "(selectors) => selectors.map((s) =>"
        " document.querySelector(s).getBoundingClientRect().top + window.scrollY)",
        [".jobs-card", "#viewer", ".privacy"],
    )
    assert tops == sorted(tops)
    assert accessibility_violations(page) == []
    page.locator("#viewer-heading").scroll_into_view_if_needed()
    page.evaluate("document.getElementById('viewer').scrollIntoView()")
    screenshot(page, f"ui-phone-{scheme}.png", full_page=False)
