"""The web UI in Debian's Chromium against the real server and the real bundled model."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import srt
import webvtt
from playwright.sync_api import FilePayload, Page, Request, expect

from app.bench.runner import word_error_rate
from tests.conftest import reference_text, shared_clip
from tests.server_process import Server
from tests.web.conftest import (
    DESKTOP,
    PHONE,
    UIFactory,
    contrast_ratios,
    drop_files,
    has_focus_ring,
    open_options,
    tab_to,
    wait_in_page,
)

pytestmark = [pytest.mark.real_model, pytest.mark.browser]

FINISHED_TIMEOUT_MS = 120_000


def transcript_text(page: Page) -> str:
    """The text of every shown line of the transcript."""
    return " ".join(page.locator("#segments .segment-text").all_inner_texts())


def job_row(page: Page, file_name: str) -> Any:
    """The job list row of one file."""
    return page.locator(".job", has=page.locator(".job-name", has_text=file_name))


def upload_task_id(page: Page, action: Any) -> str:
    """Run `action` (which uploads) and return the task id the server answered with."""
    with page.expect_response(
        lambda response: (
            response.request.method == "POST"
            and "/api/v1/transcribe" in response.url
            and response.status == 200
        )
    ) as answer:
        action()
    return str(answer.value.json()["task_id"])


def assert_gone_on_server(server: Server, task_id: str) -> None:
    """The server answers 404 for the task and its result."""
    assert httpx.get(f"{server.url}/api/v1/tasks/{task_id}", timeout=10).status_code == 404
    result = httpx.get(f"{server.url}/api/v1/tasks/{task_id}/result", timeout=10)
    assert result.status_code == 404


def test_jfk_shows_progress_then_transcript_exports_and_deletes(
    ui_server: Server, open_ui: UIFactory
) -> None:
    """Upload jfk: queue/progress states, transcript, search, copy, SRT/VTT/TXT/JSON, delete."""
    ui = open_ui(ui_server)
    ui.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = ui.open()
    clip = shared_clip("en_jfk.flac")
    reference = reference_text("en_jfk.flac")

    task_id = upload_task_id(page, lambda: page.set_input_files("#file-input", str(clip)))
    row = job_row(page, clip.name)
    expect(row).to_have_attribute("data-state", "finished", timeout=FINISHED_TIMEOUT_MS)

    states = [entry["state"] for entry in ui.trail(clip.name)]
    assert states[0] in ("waiting-upload", "uploading")
    assert "processing" in states, states
    assert states.index("processing") < states.index("finished")
    shown_progress = [
        entry for entry in ui.trail(clip.name) if entry["state"] in ("uploading", "processing")
    ]
    assert any(entry["value"] is not None for entry in shown_progress), shown_progress
    assert any("Transcribing" in entry["status"] for entry in ui.trail(clip.name))

    # The viewer opens by itself with the timed lines.
    expect(page.locator("#viewer")).to_be_visible()
    expect(page.locator("#viewer-name")).to_have_text(clip.name)
    assert word_error_rate(reference, transcript_text(page)) <= 0.15
    expect(page.locator("#viewer-summary")).to_contain_text("English")
    expect(page.locator("#viewer-note")).to_contain_text("keeps this result until")

    # Search marks the matches and says how many lines match.
    page.fill("#search", "COUNTRY")
    expect(page.locator("#segments mark").first).to_have_text(re.compile("country", re.I))
    expect(page.locator("#search-count")).to_have_text(re.compile(r"^Found in 1 of \d+ lines?\.$"))
    page.fill("#search", "zebra crossing")
    expect(page.locator("#search-count")).to_have_text("No lines match.")
    expect(page.locator("#segments .segment")).to_have_count(0)
    page.fill("#search", "")

    # A line plays the local file (a blob: URL, nothing fetched again) from its start.
    page.evaluate("document.getElementById('player').currentTime = 5")
    first_line = page.locator("#segments .segment-time").first
    start = float(first_line.get_attribute("data-start") or "nan")
    first_line.click()
    wait_in_page(page, "!document.getElementById('player').paused")
    player = page.evaluate(
        "(() => { const p = document.getElementById('player');"
        " return {src: p.currentSrc, time: p.currentTime}; })()"
    )
    assert player["src"].startswith("blob:")
    assert start <= player["time"] < start + 3
    posts = [url for url in ui.guard.seen if url.endswith("/api/v1/transcribe")]
    assert len(posts) == 1  # playing did not upload or download the audio again
    page.evaluate("document.getElementById('player').pause()")

    downloads = {}
    for fmt in ("srt", "vtt", "txt", "json"):
        with page.expect_download() as download:
            page.click(f"#viewer [data-format='{fmt}']")
        assert download.value.suggested_filename == f"en_jfk.{fmt}"
        downloads[fmt] = Path(download.value.path()).read_text(encoding="utf-8")
    cues = list(srt.parse(downloads["srt"]))
    assert cues and cues[0].index == 1
    assert all(cue.start < cue.end for cue in cues)
    assert word_error_rate(reference, " ".join(cue.content for cue in cues)) <= 0.15
    vtt_cues = webvtt.from_string(downloads["vtt"]).captions
    assert len(vtt_cues) == len(cues)
    assert word_error_rate(reference, downloads["txt"]) <= 0.15
    assert json.loads(downloads["json"])["language"] == "en"

    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.set_viewport_size(DESKTOP)
    page.click("#copy-button")
    expect(page.locator("#copy-button")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert word_error_rate(reference, copied) <= 0.15

    # One delete, and it asks first: "Keep it" changes nothing.
    page.click("#delete-button")
    expect(page.locator("#confirm-dialog")).to_be_visible()
    expect(page.locator("#confirm-text")).to_contain_text("cannot be undone")
    page.click("#confirm-cancel")
    expect(row).to_have_attribute("data-state", "finished")
    assert httpx.get(f"{ui_server.url}/api/v1/tasks/{task_id}", timeout=10).status_code == 200
    page.click("#delete-button")
    page.click("#confirm-ok")
    expect(row).to_have_attribute("data-state", "deleted")
    expect(page.locator("#viewer")).to_be_hidden()
    assert_gone_on_server(ui_server, task_id)
    assert page.evaluate("localStorage.getItem('whisper-api:jobs')") == "[]"


def test_keyboard_only_from_options_to_deletion(ui_server: Server, open_ui: UIFactory) -> None:
    """Options, file picker, transcript, playback, SRT download and deletion by keyboard alone."""
    ui = open_ui(ui_server)
    page = ui.open()
    # Listening from the start switches Playwright's file-chooser interception on before any
    # key is pressed; enabled later, it can miss a chooser opened right after other input.
    page.on("filechooser", lambda _: None)
    clip = shared_clip("en_jfk.flac")

    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    tab_to(page, "#options-panel summary")
    assert has_focus_ring(page, "#options-panel summary")
    page.keyboard.press("Enter")
    expect(page.locator("#options-panel")).to_have_attribute("open", "")
    tab_to(page, "#task-transcribe")
    assert has_focus_ring(page, "#task-transcribe")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#task-translate")).to_be_checked()
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#task-transcribe")).to_be_checked()
    page.keyboard.press("Tab")
    expect(page.locator("#language")).to_be_focused()
    page.keyboard.type("english")
    page.keyboard.press("Tab")
    expect(page.locator("#language")).to_have_value("English (en)")
    tab_to(page, "#word-timestamps")
    page.keyboard.press("Space")
    expect(page.locator("#word-timestamps")).to_be_checked()
    tab_to(page, "#file-input")
    assert has_focus_ring(page, "#file-input")

    uploads: list[Request] = []
    page.on("request", lambda r: uploads.append(r) if r.method == "POST" else None)
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(str(clip))
    row = job_row(page, clip.name)
    expect(row).to_have_attribute("data-state", "finished", timeout=FINISHED_TIMEOUT_MS)
    body = uploads[0].post_data_buffer or b""
    assert re.search(rb'name="language"\r\n\r\nen\r\n', body)
    assert re.search(rb'name="word_timestamps"\r\n\r\ntrue\r\n', body)
    stored = json.loads(page.evaluate("localStorage.getItem('whisper-api:prefs')"))
    assert stored["language"] == "en" and stored["wordTimestamps"] is True

    tab_to(page, ".job .action-open")
    assert has_focus_ring(page, ".job .action-open")
    page.keyboard.press("Enter")
    expect(page.locator("#viewer-heading")).to_be_focused()

    tab_to(page, "#segments .segment-time")
    page.keyboard.press("Enter")
    wait_in_page(page, "!document.getElementById('player').paused")
    # With word timestamps, each word is its own stop for Tab and plays from its time.
    page.evaluate("document.getElementById('player').pause()")
    tab_to(page, "#segments .word")
    words = page.locator("#segments .word")
    assert words.count() >= 10
    page.keyboard.press("Tab")
    expect(words.nth(1)).to_be_focused()
    page.keyboard.press("Enter")
    wait_in_page(page, "!document.getElementById('player').paused")
    word_start = float(words.nth(1).get_attribute("data-start") or "nan")
    assert abs(page.evaluate("document.getElementById('player').currentTime") - word_start) < 1.5
    page.evaluate("document.getElementById('player').pause()")

    tab_to(page, "#viewer [data-format='srt']", backwards=True)
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    cues = list(srt.parse(Path(download.value.path()).read_text(encoding="utf-8")))
    assert word_error_rate(reference_text(clip.name), " ".join(c.content for c in cues)) <= 0.15

    task_id = json.loads(uploads[0].response().text())["task_id"]  # type: ignore[union-attr]
    tab_to(page, "#delete-button")
    page.keyboard.press("Enter")
    expect(page.locator("#confirm-cancel")).to_be_focused()  # the safe choice comes first
    page.keyboard.press("Tab")
    expect(page.locator("#confirm-ok")).to_be_focused()
    page.keyboard.press("Enter")
    expect(row).to_have_attribute("data-state", "deleted")
    expect(row).to_be_focused()  # focus lands on the row that changed, not on <body>
    assert_gone_on_server(ui_server, task_id)

    tab_to(page, ".job .action-remove")
    page.keyboard.press("Enter")
    expect(page.locator(".job")).to_have_count(0)
    expect(page.locator("#upload-heading")).to_be_focused()


def test_text_files_get_a_friendly_message(ui_server: Server, open_ui: UIFactory) -> None:
    """Picked or dropped non-audio files get a plain explanation; an empty file is called empty."""
    ui = open_ui(ui_server)
    page = ui.open()
    page.set_input_files(
        "#file-input",
        files=[
            FilePayload(name="notes.txt", mimeType="text/plain", buffer=b"meeting notes\n"),
            FilePayload(name="silence.wav", mimeType="audio/wav", buffer=b""),
        ],
    )
    drop_files(
        page,
        [
            ("minutes.txt", "text/plain", b"1. welcome\n2. budget\n"),
            ("photo.png", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(64)),
        ],
    )
    expect(page.locator(".job")).to_have_count(4)
    empty = job_row(page, "silence.wav")
    expect(empty).to_have_attribute("data-state", "rejected")
    expect(empty.locator(".job-status")).to_have_text("This file is empty.")
    for name in ("notes.txt", "minutes.txt", "photo.png"):
        row = job_row(page, name)
        expect(row).to_have_attribute("data-state", "rejected")
        expect(row.locator(".job-status")).to_have_text(
            "This is not an audio or video file the server can read."
        )
        expect(row.locator(".job-detail")).to_contain_text("MP3, WAV, FLAC")
    expect(page.locator("#announcer")).to_contain_text("photo.png")
    for _ in range(4):
        page.locator(".job .action-remove").first.click()
    expect(page.locator(".job")).to_have_count(0)
    expect(page.locator("#jobs-empty")).to_be_visible()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_theme_follows_the_system_with_readable_contrast(
    ui_server: Server, open_ui: UIFactory, scheme: Literal["light", "dark"]
) -> None:
    """Light or dark as the system says, and text at least 4.5:1 against its background."""
    page = open_ui(ui_server, color_scheme=scheme).open()
    drop_files(page, [("notes.txt", "text/plain", b"not audio")])
    expect(page.locator(".job")).to_have_attribute("data-state", "rejected")
    expect(page.locator("#privacy-list")).to_have_attribute("data-loaded", "yes")
    open_options(page)
    selectors = [
        "h1", ".brand-name", ".tagline", "legend", "#language", ".hint", ".segmented .sub",
        ".dropzone-title", "label.big-button", "#record-button", "#options-summary",
        "#privacy-list li", ".job-name", ".job-meta", ".job-status",
        ".job-detail", ".job .action-remove", "#key-button", ".site-footer p",
        ".toolbar-label", "#delete-button", ".segment-time",
    ]  # fmt: skip
    ratios = contrast_ratios(page, selectors)
    body = ratios.pop("bodyLuminance")
    assert (body > 0.5) if scheme == "light" else (body < 0.05)
    too_faint = {s: round(r, 2) for s, r in ratios.items() if r is not None and r < 4.5}
    assert too_faint == {}
    assert all(ratios[s] is not None for s in selectors if s != ".segment-time")


def test_choices_are_remembered_and_privacy_is_explained(
    ui_server: Server, open_ui: UIFactory
) -> None:
    """Task, language and word timestamps survive a reload; the notice uses /api/v1/privacy."""
    ui = open_ui(ui_server)
    page = ui.open()
    privacy = page.locator("#privacy-list")
    expect(privacy).to_contain_text("30 minutes")
    expect(privacy).to_contain_text("never written to the server's disk")
    expect(privacy).to_contain_text("counted again from each time")
    expect(page.locator("#upload-privacy")).to_have_text(
        "Audio is never stored on disk; results are erased 30 minutes after they finish."
    )

    expect(page.locator("#options-summary")).to_have_text(
        "Transcribe · detect language · server's model"
    )
    open_options(page)
    page.check("#task-translate")
    page.fill("#language", "germ")
    expect(page.locator("#language")).to_have_attribute("aria-invalid", "true")
    page.set_input_files(
        "#file-input", files=[FilePayload(name="a.wav", mimeType="audio/wav", buffer=b"x")]
    )
    expect(page.locator("#upload-error")).to_contain_text("Choose a language from the list")
    expect(page.locator("#language")).to_be_focused()
    expect(page.locator(".job")).to_have_count(0)
    page.fill("#language", "German (de)")
    page.locator("#language").blur()
    expect(page.locator("#language")).to_have_attribute("aria-invalid", "false")
    page.check("#word-timestamps")
    page.reload()
    page.wait_for_selector("html[data-ready='yes']")
    expect(page.locator("#options-summary")).to_have_text(
        "Translate into English · German · server's model · word times"
    )
    expect(page.locator("#task-translate")).to_be_checked()
    expect(page.locator("#language")).to_have_value("German (de)")
    expect(page.locator("#word-timestamps")).to_be_checked()

    # The model list follows the server's GET /v1/models, or falls back to its own choice.
    listed = httpx.get(ui_server.url + "/v1/models", timeout=10)
    ids = [m["id"] for m in listed.json()["data"]] if listed.status_code == 200 else []
    expect(page.locator("#model option")).to_have_count(1 + len(ids))
    expect(page.locator("#model")).to_have_value("")


def test_model_list_from_the_server_is_offered_and_remembered(
    ui_server: Server, open_ui: UIFactory
) -> None:
    """The select offers the task API's model names and keeps the choice."""
    ui = open_ui(ui_server)
    models = {
        "models": [
            {"name": "tiny.en", "on_this_machine": False, "english_only": True},
            {"name": "base", "on_this_machine": True, "english_only": False},
        ],
        "server_choice": "base",
    }
    ui.page.route("**/api/v1/models", lambda route: route.fulfill(json=models))
    page = ui.open()
    open_options(page)
    expect(page.locator("#model option")).to_have_text(["Server's choice", "tiny.en", "base"])
    page.select_option("#model", "tiny.en")
    expect(page.locator("#model-hint")).to_contain_text("English only")
    page.select_option("#model", "base")
    page.reload()
    page.wait_for_selector("html[data-ready='yes']")
    expect(page.locator("#model")).to_have_value("base")


MODULE_CHECKS = """
async () => {
  const api = await import("./js/api.js");
  const languages = await import("./js/languages.js");
  const format = await import("./js/format.js");
  const exporter = await import("./js/exporter.js");
  const store = await import("./js/store.js");
  const jobtext = await import("./js/jobtext.js");
  const job = { options: { task: "transcribe" } };
  const stages = [
    { stage: "loading_model", progress: 0, audio_duration: 120 },
    { stage: "first_window", progress: 0, audio_duration: 120 },
    { stage: "first_window", progress: 0, audio_duration: 11 },
    { stage: "first_window", progress: 0, audio_duration: 120, seconds_left: 14 },
    { stage: "transcribing", progress: 0.42, audio_duration: 120 },
    { progress: 0.5 },
    { stage: "transcribing", progress: 0.42, audio_duration: 600, seconds_left: 130 },
    { stage: "transcribing", progress: 0.9, audio_duration: 600, seconds_left: 12 },
  ].map((state) => jobtext.processingText(job, state));
  // Between the server's updates the share moves on at its pace, never past 99 %.
  const moving = [0, 30, 60, 600].map((since) => jobtext.shownProgress(
    { progress: 0.4, seconds_left: 60 }, since));
  const result = { language: "en", text: "a b", segments: [
    { start: 0, end: 1.5, text: " Hello there.", speaker: "SPEAKER_00" },
    { start: 1.5, end: 3723.25, text: " Second line." },
  ] };
  const edits = { lines: { 1: "Second line, edited." }, speakers: { SPEAKER_00: "Ada" } };
  const lines = exporter.editedLines(result, edits);
  const events = [];
  const feed = api.createEventParser((message) => events.push(message));
  // CRLF split between chunks, a keep-alive comment, and a two-line data field.
  const chunks = [
    "event: pending\\r", "\\ndata: {\\"a\\":1}\\r\\n\\r", "\\n: keepalive\\r\\n\\r\\n",
    "event: processing\\ndata: x\\ndata: y\\n\\n",
  ];
  for (const chunk of chunks) feed(chunk);
  return {
    events,
    retryAfterSeconds: api.parseRetryAfter("7"),
    retryAfterDate: api.parseRetryAfter(new Date(Date.now() + 30000).toUTCString()),
    fileName: api.fileNameFrom(
      "attachment; filename=\\"Besprechung.srt\\"; filename*=UTF-8''Besprechung%20%C3%BCber.srt"),
    plainFileName: api.fileNameFrom('attachment; filename="plain.vtt"'),
    languages: ["", "auto", "de", "German", "german (de)", "pt_BR", "klingon"].map(
      languages.resolveLanguage),
    lifetimes: [0.05, 60, 90, 180, 2880].map(format.lifetime),
    clocks: [7.3, 65, 3725].map(format.clock),
    srt: exporter.toSrt(lines),
    vtt: exporter.toVtt(lines),
    text: exporter.toText(lines),
    json: JSON.parse(exporter.toJson(result, lines)).segments.map((s) => [s.text, s.speaker]),
    tags: [store.keyTag(""), store.keyTag("k1"), store.keyTag("k1"), store.keyTag("k2")],
    stages,
    moving,
  };
}
"""


def test_page_helpers_parse_events_headers_and_languages(
    ui_server: Server, open_ui: UIFactory
) -> None:
    """SSE parser, Retry-After, names, languages, wording, stages, edited exports, key tags."""
    page = open_ui(ui_server).open()
    checks = page.evaluate(MODULE_CHECKS)
    assert checks["events"] == [
        {"event": "pending", "data": '{"a":1}'},
        {"event": "processing", "data": "x\ny"},
    ]
    assert checks["retryAfterSeconds"] == 7
    assert 25 <= checks["retryAfterDate"] <= 31
    assert checks["fileName"] == "Besprechung über.srt"
    assert checks["plainFileName"] == "plain.vtt"
    assert checks["languages"] == ["", "", "de", "de", "de", "pt", None]
    assert checks["lifetimes"] == ["3 seconds", "60 minutes", "90 minutes", "3 hours", "2 days"]
    assert checks["clocks"] == ["0:07", "1:05", "1:02:05"]
    assert checks["srt"] == (
        "1\n00:00:00,000 --> 00:00:01,500\nAda: Hello there.\n\n"
        "2\n00:00:01,500 --> 01:02:03,250\nSecond line, edited.\n"
    )
    assert checks["vtt"].startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\n<v Ada>Hello there.")
    assert checks["text"] == "Ada: Hello there.\nSecond line, edited."
    assert checks["json"] == [["Hello there.", "Ada"], ["Second line, edited.", None]]
    assert checks["stages"] == [
        "Loading the model…",
        "Transcribing 2:00 of audio…",
        "Transcribing…",
        "Transcribing 2:00 of audio · about 15 seconds left",
        "Transcribing… 42% of 2:00",
        "Transcribing… 50% of the audio",
        "Transcribing… 42% of 10:00 · about 2 minutes left",
        "Transcribing… 90% of 10:00 · about 15 seconds left",
    ]
    assert checks["moving"] == pytest.approx([0.4, 0.7, 0.99, 0.99])
    empty, first, again, other = checks["tags"]
    assert empty == "" and first == again and first != other and len(first) == 8
