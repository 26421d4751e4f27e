"""Browser fixtures: Debian's Chromium through Playwright, real servers, and a host guard."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Route,
    ViewportSize,
    sync_playwright,
)

from tests.conftest import REPO_ROOT
from tests.server_process import Server, served

CHROMIUM = Path("/usr/bin/chromium")
# Offline and quiet: no QUIC, no component or sync traffic, no first-run pages.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO_ROOT / "test-artifacts"
DESKTOP = ViewportSize(width=1440, height=900)
PHONE = ViewportSize(width=390, height=844)
# axe-core impacts that fail a test; "moderate" and "minor" are reported only.
BLOCKING_IMPACTS = ("serious", "critical")

# Records, per job row, each distinct (state, progress value, status text) the page shows,
# so a test can tell what the person saw on the way and not only the end state.
TRAIL_SCRIPT = """
window.__trail = [];
new MutationObserver(() => {
  for (const row of document.querySelectorAll(".job")) {
    const bar = row.querySelector("progress");
    const entry = {
      name: row.querySelector(".job-name")?.textContent || "",
      state: row.dataset.state || "",
      value: bar && !bar.hidden ? bar.getAttribute("value") : null,
      status: row.querySelector(".job-status")?.textContent || "",
    };
    const last = window.__trail.findLast((item) => item.name === entry.name);
    if (!last || last.state !== entry.state || last.value !== entry.value
        || last.status !== entry.status) {
      window.__trail.push(entry);
    }
  }
}).observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
"""


@pytest.fixture(scope="session")
def playwright_session() -> Iterator[Playwright]:
    """Playwright's driver for the whole session."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_session: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless; never a browser downloaded by `playwright install`."""
    browser = playwright_session.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


def launch_with_microphone(playwright: Playwright, recording: Path) -> Browser:
    """Chromium whose microphone plays `recording` once, the permission prompt answered yes."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={recording}%noloop",
        ],
    )


@contextlib.contextmanager
def ui_served(tmp_path: Path, **env: str) -> Iterator[Server]:
    """A real server with the bundled `base` model for a block; it must stop on SIGTERM."""
    with served(tmp_path, CPU_FALLBACK_MODEL="base", **env) as server:
        yield server
    assert server.process.returncode != -signal.SIGKILL, "the server ignored SIGTERM"


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The real server with the bundled `base` model; results live 30 minutes."""
    with ui_served(tmp_path_factory.mktemp("ui-server"), DELETE_RESULTS_AFTER_M="30") as server:
        yield server


@dataclass
class HostGuard:
    """Every request the browser tried, and those that went to any host but the server."""

    allowed: str
    seen: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    def handle(self, route: Route) -> None:
        """Let the server's requests through; record and abort all others."""
        url = route.request.url
        self.seen.append(url)
        if urlsplit(url).netloc == self.allowed:
            route.fallback()
        else:
            self.foreign.append(url)
            route.abort("blockedbyclient")


@dataclass
class UI:
    """One browser context with its page, opened on a server."""

    server: Server
    context: BrowserContext
    page: Page
    guard: HostGuard
    errors: list[str]

    def open(self) -> Page:
        """Load the page and wait until its script has wired everything."""
        self.page.goto(self.server.url + "/")
        self.page.wait_for_selector("html[data-ready='yes']")
        return self.page

    def trail(self, name: str) -> list[dict[str, Any]]:
        """What the row of file `name` showed, in order."""
        entries: list[dict[str, Any]] = self.page.evaluate("window.__trail")
        return [entry for entry in entries if entry["name"] == name]


UIFactory = Callable[..., UI]


@pytest.fixture
def open_ui(browser: Browser) -> Iterator[UIFactory]:
    """Open the UI on a server; afterwards, fail on any request to another host, a JS error
    or a Content-Security-Policy violation."""
    opened: list[UI] = []

    def factory(
        server: Server,
        *,
        viewport: ViewportSize | None = None,
        color_scheme: Literal["light", "dark"] = "light",
        on: Browser | None = None,
        phone: bool = False,
    ) -> UI:
        # A phone has a touch screen and no mouse: the page then leads with "Choose files".
        context = (on or browser).new_context(
            viewport=viewport or (PHONE if phone else DESKTOP),
            accept_downloads=True,
            color_scheme=color_scheme,
            has_touch=phone,
            is_mobile=phone,
        )
        guard = HostGuard(allowed=urlsplit(server.url).netloc)
        context.route("**/*", guard.handle)
        context.add_init_script(TRAIL_SCRIPT)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        # The server's Content-Security-Policy (app/api/headers.py): a blocked inline
        # script or style, or a foreign load, is a bug in the page.
        page.on(
            "console",
            lambda message: (
                errors.append(message.text) if "Content Security Policy" in message.text else None
            ),
        )
        ui = UI(server=server, context=context, page=page, guard=guard, errors=errors)
        opened.append(ui)
        return ui

    yield factory
    for ui in opened:
        ui.context.close()
    for ui in opened:
        assert ui.guard.seen, "the host guard saw no request at all"
        assert ui.guard.foreign == [], f"requests to other hosts: {ui.guard.foreign}"
        assert ui.errors == [], f"uncaught errors in the page: {ui.errors}"


def open_options(page: Page) -> None:
    """Unfold the options line (it starts folded) unless it is open already."""
    if page.get_attribute("#options-panel", "open") is None:
        page.click("#options-panel summary")


def accessibility_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now (bundled axe.min.js)."""
    results = Axe().run(page)
    return [
        f"{violation['id']}: {[node['target'] for node in violation['nodes']]}"
        for violation in results.response["violations"]
        if violation.get("impact") in BLOCKING_IMPACTS
    ]


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """A PNG under test-artifacts/ (ignored by git) for people to look at.

    Phones get the screen as it is (`full_page=False`): a full-page capture re-renders a
    touch-emulating page as if it had a mouse, which shows the wrong wording.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=full_page)
    return path


def tab_to(page: Page, selector: str, *, limit: int = 80, backwards: bool = False) -> None:
    """Press Tab (or Shift+Tab) until the focused element matches `selector`."""
    key = "Shift+Tab" if backwards else "Tab"
    for _ in range(limit):
        page.keyboard.press(key)
        if page.evaluate("(s) => document.activeElement?.matches(s) ?? false", selector):
            return
    raise AssertionError(f"{selector} never received focus with {key}")


def has_focus_ring(page: Page, selector: str) -> bool:
    """Whether the element (or, for the hidden file input, its drop zone) shows an outline."""
    return bool(
        page.evaluate(
            """(s) => {
                const el = document.querySelector(s);
                const shown = el.type === "file" ? el.closest(".dropzone").querySelector("label")
                    : el.type === "radio" ? el.labels[0] : el;
                const style = getComputedStyle(shown);
                return style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2;
            }""",
            selector,
        )
    )


def drop_files(page: Page, files: list[tuple[str, str, bytes]]) -> None:
    """Drop (name, type, bytes) files on the drop zone, as a drag from the desktop does."""
    page.evaluate(
        """(files) => {
            const transfer = new DataTransfer();
            for (const [name, type, bytes] of files) {
                transfer.items.add(new File([new Uint8Array(bytes)], name, { type }));
            }
            const zone = document.getElementById("dropzone");
            for (const kind of ["dragenter", "dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(kind, {
                    dataTransfer: transfer, bubbles: true, cancelable: true,
                }));
            }
        }""",
        [[name, media_type, list(data)] for name, media_type, data in files],
    )


CONTRAST_SCRIPT = r"""
(selectors) => {
  const parse = (color) => {
    const [r, g, b, a = 1] = color.match(/[\d.]+/g).map(Number);
    return { r, g, b, a };
  };
  const channel = (value) => {
    const v = value / 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const luminance = ({ r, g, b }) =>
    0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const background = (element) => {
    for (let node = element; node; node = node.parentElement) {
      const color = parse(getComputedStyle(node).backgroundColor);
      if (color.a >= 0.99) return color;
    }
    return parse(getComputedStyle(document.body).backgroundColor);
  };
  const result = {};
  for (const selector of selectors) {
    const element = document.querySelector(selector);
    if (!element) { result[selector] = null; continue; }
    const [light, dark] = [luminance(parse(getComputedStyle(element).color)),
                           luminance(background(element))].sort((x, y) => y - x);
    result[selector] = (light + 0.05) / (dark + 0.05);
  }
  result.bodyLuminance = luminance(parse(getComputedStyle(document.body).backgroundColor));
  return result;
}
"""


def contrast_ratios(page: Page, selectors: list[str]) -> dict[str, float]:
    """WCAG contrast of each element's text against the first opaque background behind it."""
    ratios: dict[str, float] = page.evaluate(CONTRAST_SCRIPT, selectors)
    return ratios


def wait_in_page(page: Page, expression: str, arg: Any = None, timeout_ms: int = 30_000) -> None:
    """Poll a JavaScript expression (or function of `arg`) until it is truthy.

    Playwright's `wait_for_function` evaluates a string inside the page, which the page's
    Content-Security-Policy (no 'unsafe-eval') refuses; `evaluate` runs outside it.
    """
    for _ in range(max(1, timeout_ms // 50)):
        if page.evaluate(expression, arg):
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"never true in the page: {expression}")
