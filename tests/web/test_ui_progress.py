"""Long-file progress on the page (issue 26, item 8): it moves during a batch, with the time left.

Chromium, real server, real bundled model, outside requests refused.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import shared_clip
from tests.server_process import Server
from tests.web.conftest import UIFactory
from tests.web.test_ui import FINISHED_TIMEOUT_MS, job_row

pytestmark = [pytest.mark.real_model, pytest.mark.browser]

LONG_CLIP = "en_longform_tedlium_120s.flac"


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
