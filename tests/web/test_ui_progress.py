"""Long-file progress on the page (issue 26, item 8): it moves during a batch, with the time left.

Chromium, real server, real bundled model, outside requests refused.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import shared_clip
from tests.server_process import Server
from tests.web.conftest import UIFactory, screenshot, wait_in_page
from tests.web.test_ui import FINISHED_TIMEOUT_MS, job_row

pytestmark = [pytest.mark.real_model, pytest.mark.browser]

LONG_CLIP = "en_longform_tedlium_120s.flac"
# The second file's row while its first batch runs: a share under 90 % and the time left.
EARLY_WITH_TIME_LEFT = """() => [...document.querySelectorAll(".job")].some((row) =>
  row.querySelector(".job-name")?.textContent.includes("talk-two")
  && / left$/.test(row.querySelector(".job-status")?.textContent || "")
  && Number(row.querySelector("progress")?.getAttribute("value")) < 90)"""


def test_a_long_file_moves_before_its_first_batch_ends_and_shows_the_time_left(
    ui_server: Server, open_ui: UIFactory
) -> None:
    """A 2-minute file (first batch = 93 % of it) shows a share under 90 % and the time left."""
    ui = open_ui(ui_server)
    page = ui.open()
    audio = shared_clip(LONG_CLIP).read_bytes()
    # The first file teaches the server the model's pace; the second runs with it known.
    page.set_input_files(
        "#file-input",
        [
            {"name": "talk-one.flac", "mimeType": "audio/flac", "buffer": audio},
            {"name": "talk-two.flac", "mimeType": "audio/flac", "buffer": audio},
        ],
    )
    wait_in_page(page, EARLY_WITH_TIME_LEFT, timeout_ms=2 * FINISHED_TIMEOUT_MS)
    screenshot(page, "ui-progress-long-file.png", full_page=False)
    for name in ("talk-one.flac", "talk-two.flac"):
        expect(job_row(page, name)).to_have_attribute(
            "data-state", "finished", timeout=2 * FINISHED_TIMEOUT_MS
        )
    trail = ui.trail("talk-two.flac")
    running = [entry for entry in trail if entry["state"] == "processing"]
    assert not any("30 seconds" in entry["status"] for entry in trail), running
    # The bar's value is a percentage.
    early = [entry for entry in running if entry["value"] and 0 < float(entry["value"]) < 90]
    assert early, running  # the share moved before the first batch (93 %) was done
    assert any(entry["status"].endswith("left") for entry in early), early
    values = [float(entry["value"]) for entry in running if entry["value"]]
    assert values == sorted(values), values  # never backwards


STATES_NOW = """
async () => {
  const jobtext = await import("./js/jobtext.js");
  const job = { options: { task: "transcribe" } };
  return [
    { stage: "first_window", progress: 0, audio_duration: 120, seconds_left: null },
    { stage: "first_window", progress: 0, audio_duration: 120, seconds_left: 14 },
    { stage: "transcribing", progress: 0.93, audio_duration: 120, seconds_left: null },
    { stage: "transcribing", progress: 0.4, audio_duration: 120, seconds_left: 12 },
  ].map((state) => jobtext.processingText(job, jobtext.stateNow(state, 2)));
}
"""


def test_a_row_two_seconds_after_the_servers_word_says_the_time_left_only_when_given(
    ui_server: Server, open_ui: UIFactory
) -> None:
    """No estimate from the server: no time left shown (a null once read as "about 5 seconds")."""
    page = open_ui(ui_server).open()
    assert page.evaluate(STATES_NOW) == [
        "Transcribing 2:00 of audio…",
        "Transcribing 2:00 of audio · about 15 seconds left",
        "Transcribing… 93% of 2:00",
        "Transcribing… 50% of 2:00 · about 10 seconds left",
    ]
