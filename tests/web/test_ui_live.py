"""Live mode: Chromium's fake microphone plays a clip and its words appear while it plays."""

from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, expect

from app.bench.runner import word_error_rate
from tests.conftest import reference_text, shared_clip
from tests.server_process import Server
from tests.web.conftest import UIFactory, launch_with_microphone

pytestmark = [pytest.mark.real_model, pytest.mark.browser]

# LJ Speech is public domain: its four clips are joined into one 26 s recording.
CLIPS = [f"en_ljspeech_LJ001-000{n}.wav" for n in range(1, 5)]
# Notes, in page time (ms), when the live box first shows words.
FIRST_WORDS_SCRIPT = """
window.__liveFirstWords = null;
new MutationObserver(() => {
  const box = document.getElementById("live-text");
  if (window.__liveFirstWords === null && box && box.textContent.trim()) {
    window.__liveFirstWords = performance.now();
  }
}).observe(document, { subtree: true, childList: true, characterData: true });
localStorage.setItem("whisper-api:prefs", JSON.stringify({ language: "en" }));
"""


@pytest.fixture(scope="module")
def joined_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The LJ Speech clips one after the other in one WAV file (same rate and format)."""
    path = tmp_path_factory.mktemp("live-mic") / "joined.wav"
    with wave.open(str(path), "wb") as out:
        for index, name in enumerate(CLIPS):
            with wave.open(str(shared_clip(name))) as clip:
                if index == 0:
                    out.setparams(clip.getparams())
                out.writeframes(clip.readframes(clip.getnframes()))
    return path


@pytest.fixture(scope="module")
def live_mic_browser(playwright_session: Playwright, joined_clip: Path) -> Iterator[Browser]:
    """Chromium whose microphone plays the joined clip once, the permission prompt answered yes."""
    browser = launch_with_microphone(playwright_session, joined_clip)
    yield browser
    browser.close()


def seconds_of(path: Path) -> float:
    """The length of a WAV file."""
    with wave.open(str(path)) as audio:
        return audio.getnframes() / audio.getframerate()


def test_live_words_appear_before_the_clip_ends_and_stop_keeps_the_transcript(
    ui_server: Server, open_ui: UIFactory, live_mic_browser: Browser, joined_clip: Path
) -> None:
    """Live: words show while the microphone still plays; Stop keeps it, here and as a task."""
    ui = open_ui(ui_server, on=live_mic_browser)
    ui.context.add_init_script(FIRST_WORDS_SCRIPT)
    page = ui.open()
    page.click("#live-button")
    expect(page.locator("#live-panel")).to_be_visible()
    started = page.evaluate("performance.now()")
    # Polled from here: wait_for_function evaluates a string in the page, which the CSP refuses.
    for _ in range(1200):
        if page.evaluate("window.__liveFirstWords !== null"):
            break
        page.wait_for_timeout(100)
    first_words_s = (page.evaluate("window.__liveFirstWords") - started) / 1000
    assert first_words_s < seconds_of(joined_clip)
    # Let the clip play out, then stop: the last turn is committed and completed.
    page.wait_for_timeout(int((seconds_of(joined_clip) - first_words_s) * 1000) + 1500)
    page.check("#live-keep")
    page.click("#live-stop")
    expect(page.locator("#live-status")).to_contain_text(
        "The transcript is kept as a task", timeout=120_000
    )
    text = page.locator("#live-text").inner_text()
    reference = " ".join(reference_text(name) for name in CLIPS)
    assert word_error_rate(reference, text) <= 0.25, text
    kept = page.locator(".job", has=page.locator(".job-name", has_text="Live transcript"))
    expect(kept).to_have_attribute("data-state", "finished", timeout=30_000)
    kept.locator("[data-action='open']").click()
    expect(page.locator("#viewer-name")).to_have_text("Live transcript")
    expect(page.locator("#segments li").first).to_be_visible()
    lines = page.locator("#segments").inner_text().lower()
    assert all(word in lines for word in text.lower().split()[:3]), lines


# Drives LiveMode's event handling in the page with a stand-in socket (no microphone).
LIVE_EVENTS_SCRIPT = """
async () => {
  const { LiveMode } = await import("./js/live.js");
  const make = (tag) => document.createElement(tag);
  const keep = make("input");
  keep.type = "checkbox";
  keep.checked = true;
  const parts = {
    panel: make("section"), text: make("div"), status: make("p"), stop: make("button"),
    copy: make("button"), download: make("button"), keep,
  };
  const errors = [];
  const sent = [];
  let closed = false;
  const live = new LiveMode(parts, {
    announce() {}, language: () => "", onError: (text) => errors.push(text), onKept() {},
  });
  live.socket = { readyState: WebSocket.OPEN, send: (data) => sent.push(JSON.parse(data).type),
    close: () => { closed = true; } };
  live.stopping = true;
  const received = (event) => live.received(event);
  received({ type: "conversation.item.input_audio_transcription.delta", item_id: "a",
    delta: "hi" });
  received({ type: "conversation.item.input_audio_transcription.failed", item_id: "b",
    error: { message: "boom" } });
  const beforeLastTurn = [...sent];
  received({ type: "conversation.item.input_audio_transcription.completed", item_id: "a",
    transcript: "hi" });
  received({ type: "error", error: { code: "nothing_to_keep" } });
  return { errors, beforeLastTurn, sent, closed };
}
"""


def test_a_failed_turn_ends_the_wait_and_keep_is_asked_once(
    ui_server: Server, open_ui: UIFactory
) -> None:
    """After Stop, a failed turn counts as done (its error shown) and keep is sent only once."""
    page = open_ui(ui_server).open()
    outcome = page.evaluate(LIVE_EVENTS_SCRIPT)
    assert outcome["errors"] == ["boom"]
    assert outcome["beforeLastTurn"] == []  # turn "a" was still open: nothing to keep yet
    assert outcome["sent"] == ["x.whisper_api.session.keep"]
    assert outcome["closed"] is True
