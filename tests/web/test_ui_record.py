"""Recording from the microphone (Chromium's fake device playing a clip) becomes a finished job."""

from __future__ import annotations

import re
import wave
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Playwright, expect

from app.bench.runner import word_error_rate
from tests.conftest import reference_text, shared_clip
from tests.server_process import Server
from tests.web.conftest import UIFactory, launch_with_microphone, wait_in_page
from tests.web.test_ui import FINISHED_TIMEOUT_MS, transcript_text

pytestmark = [pytest.mark.real_model, pytest.mark.browser]

CLIP = "en_ljspeech_LJ001-0004.wav"


@pytest.fixture(scope="module")
def mic_browser(playwright_session: Playwright) -> Iterator[Browser]:
    """Chromium whose microphone plays CLIP once, with the permission prompt answered yes."""
    browser = launch_with_microphone(playwright_session, shared_clip(CLIP))
    yield browser
    browser.close()


def clip_seconds() -> float:
    """The length of CLIP."""
    with wave.open(str(shared_clip(CLIP))) as audio:
        return audio.getnframes() / audio.getframerate()


def test_recording_becomes_a_job_with_the_right_words(
    ui_server: Server, open_ui: UIFactory, mic_browser: Browser
) -> None:
    """Record, stop: the recording is uploaded like a file and transcribed to the clip's words."""
    ui = open_ui(ui_server, on=mic_browser)
    page = ui.open()
    page.click("#record-button")
    expect(page.locator("#recorder")).to_be_visible()
    expect(page.locator("#record-stop")).to_be_focused()
    # Let the whole clip play into the recording (the timer shows whole seconds).
    wanted = int(clip_seconds()) + 1
    wait_in_page(
        page,
        "(s) => { const [m, sec] = document.getElementById('record-time').textContent"
        ".split(':').map(Number); return m * 60 + sec >= s; }",
        arg=wanted,
        timeout_ms=(wanted + 10) * 1000,
    )
    is_upload = lambda r: r.method == "POST" and "/api/v1/transcribe" in r.url  # noqa: E731
    with page.expect_request(is_upload) as sent:
        page.click("#record-stop")
    expect(page.locator("#recorder")).to_be_hidden()
    body = sent.value.post_data_buffer or b""
    assert re.search(rb'filename="Recording [0-9 -]+\.(webm|ogg|m4a)"', body)
    assert re.search(rb"Content-Type: audio/(webm|ogg|mp4)", body)

    row = page.locator(".job").first
    expect(row).to_have_attribute("data-state", "finished", timeout=FINISHED_TIMEOUT_MS)
    expect(row.locator(".job-name")).to_have_text(re.compile(r"^Recording .+"))
    assert word_error_rate(reference_text(CLIP), transcript_text(page)) <= 0.25
    # The recording plays back from the page itself, like a chosen file.
    assert page.evaluate("document.getElementById('player').currentSrc").startswith("blob:")


def test_discarding_a_recording_sends_nothing(
    ui_server: Server, open_ui: UIFactory, mic_browser: Browser
) -> None:
    """ "Discard" stops the microphone and no job appears."""
    ui = open_ui(ui_server, on=mic_browser)
    page = ui.open()
    page.click("#record-button")
    expect(page.locator("#recorder")).to_be_visible()
    page.click("#record-cancel")
    expect(page.locator("#recorder")).to_be_hidden()
    expect(page.locator("#record-button")).to_be_focused()
    expect(page.locator(".job")).to_have_count(0)
    assert not [url for url in ui.guard.seen if "/api/v1/transcribe" in url]
