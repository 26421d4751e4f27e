"""/docs in Chromium with every outside request blocked: it renders and "Try it out" works."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import wav_bytes
from tests.server_process import Server, served
from tests.web.conftest import UIFactory, screenshot

pytestmark = [pytest.mark.browser]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_docs_render_offline_and_try_it_out_answers(
    ui_server: Server, open_ui: UIFactory, scheme: str
) -> None:
    """Operations render from the packaged Swagger UI; a "Try it out" call gets a 200."""
    ui = open_ui(ui_server, color_scheme=scheme)  # type: ignore[arg-type]
    page = ui.page
    page.goto(ui_server.url + "/docs")
    operation = page.locator(".opblock").filter(has_text="/api/v1/version")
    expect(operation.first).to_be_visible(timeout=30_000)
    assert page.locator(".opblock").count() >= 20  # every route, not an error box
    screenshot(page, f"docs-{scheme}.png")

    operation.first.locator(".opblock-summary").click()
    page.locator(".try-out__btn").first.click()
    with page.expect_response(lambda response: response.url.endswith("/api/v1/version")) as call:
        page.locator(".btn.execute").first.click()
    assert call.value.status == 200
    status = page.locator(".live-responses-table tbody .response-col_status").first
    expect(status).to_have_text("200")
    assert all(url.startswith(ui_server.url) for url in ui.guard.seen)


def test_try_it_out_uploads_with_the_prefilled_fields(
    ui_server: Server, open_ui: UIFactory, tmp_path: Path
) -> None:
    """An upload's "Try it out" fills typed values (never the word "string") and gets a 200."""
    clip = tmp_path / "tone.wav"
    clip.write_bytes(wav_bytes(1.0))
    page = open_ui(ui_server).page
    page.goto(ui_server.url + "/docs")
    operation = page.locator(".opblock").filter(has_text="/api/v1/transcribe").first
    expect(operation).to_be_visible(timeout=30_000)
    operation.locator(".opblock-summary").click()
    operation.locator(".try-out__btn").click()
    filled = operation.locator(".opblock-section-request-body input[type=text]")
    expect(filled.first).to_be_visible()
    values = filled.evaluate_all("inputs => inputs.map((input) => input.value)")
    assert "string" not in values and "42" in values, values
    operation.locator("input[type=file]").set_input_files(clip)
    with page.expect_response(lambda response: response.url.endswith("/api/v1/transcribe")) as call:
        operation.locator(".btn.execute").click()
    assert call.value.status == 200, call.value.text()


def test_authorize_button_with_api_keys_makes_try_it_out_pass(
    tmp_path: Path, open_ui: UIFactory
) -> None:
    """With API_KEYS, /docs offers "Authorize"; a key given there makes "Try it out" a 200."""
    key = "docs-key-0123456789"
    with served(tmp_path, CPU_FALLBACK_MODEL="base", API_KEYS=key) as server:
        page = open_ui(server).page
        page.goto(server.url + "/docs")
        authorize = page.locator(".btn.authorize").first
        expect(authorize).to_be_visible(timeout=30_000)
        authorize.click()
        page.locator(".auth-container input").first.fill(key)
        page.locator(".auth-btn-wrapper .btn.modal-btn.auth").first.click()
        page.locator(".btn-done").first.click()
        operation = page.locator(".opblock").filter(has_text="/api/v1/decoder_status").first
        operation.locator(".opblock-summary").click()
        operation.locator(".try-out__btn").click()
        with page.expect_response(lambda r: r.url.endswith("/api/v1/decoder_status")) as call:
            operation.locator(".btn.execute").click()
        assert call.value.status == 200, call.value.text()
        assert call.value.request.headers.get("authorization") == f"Bearer {key}"
