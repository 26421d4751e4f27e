"""The web UI in Debian's Chromium against an API node of a real Redis cluster."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.backends.redis.cluster_rig import (
    redis_server,
    start_api_node,
    start_worker,
    wait_for_workers,
)
from tests.conftest import reference_text, shared_clip
from tests.server_process import Server
from tests.web.conftest import UIFactory, open_options
from tests.web.test_ui import FINISHED_TIMEOUT_MS, job_row, transcript_text

pytestmark = [pytest.mark.real_model, pytest.mark.browser]

# Words of the reference (en_jfk.txt) that tiny.en gets right.
REFERENCE_WORDS = "ask not what your country can do for you"


def plain_words(text: str) -> str:
    """Lower case, punctuation dropped, single spaces."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


@pytest.fixture
def api_node(tmp_path: Path) -> Iterator[Server]:
    """redis-server, one `whisper-api worker` (tiny.en) and one API node whose own cap
    (MAX_MODEL=base) is larger than what its fleet runs; all stopped afterwards."""
    with redis_server(tmp_path) as redis:
        worker = start_worker(tmp_path, redis.url)
        try:
            wait_for_workers(redis.client, 1)
            node = start_api_node(tmp_path, redis.url, MAX_MODEL="base")
            try:
                yield node
            finally:
                node.stop()
        finally:
            worker.stop()


def test_page_on_an_api_node_transcribes_offers_fleet_models_and_refuses_live(
    api_node: Server, open_ui: UIFactory
) -> None:
    """Through an API node: jfk is transcribed, only fleet models offered, Live clearly refused."""
    page = open_ui(api_node).open()
    status = httpx.get(f"{api_node.url}/api/v1/decoder_status", timeout=10).json()
    offered = sorted({name for worker in status["workers"] for name in worker["models"]})
    assert offered == ["tiny.en"], status["workers"]
    open_options(page)
    listed = page.locator("#model option").evaluate_all("(options) => options.map(o => o.value)")
    assert listed == ["", *offered]  # "Server's choice", then the fleet's models only

    page.fill("#language", "English (en)")  # tiny.en cannot detect the language
    page.locator("#language").blur()
    clip = shared_clip("en_jfk.flac")
    page.set_input_files("#file-input", str(clip))
    row = job_row(page, clip.name)
    ended = re.compile(r"^(finished|failed|rejected)$")
    expect(row).to_have_attribute("data-state", ended, timeout=FINISHED_TIMEOUT_MS)
    assert row.get_attribute("data-state") == "finished", row.inner_text()
    expect(page.locator("#viewer-name")).to_have_text(clip.name)
    assert REFERENCE_WORDS in plain_words(reference_text(clip.name))
    assert REFERENCE_WORDS in plain_words(transcript_text(page))

    page.click("#live-button")
    expect(page.locator("#upload-error")).to_contain_text("does not run on this server")
    expect(page.locator("#live-panel")).to_be_hidden()
