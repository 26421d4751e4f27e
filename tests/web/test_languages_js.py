"""The UI's embedded language list matches the server's, so every choice is accepted."""

from __future__ import annotations

import json
import re

from app.transcription.languages import LANGUAGES
from tests.conftest import REPO_ROOT

LANGUAGES_JS = REPO_ROOT / "web" / "js" / "languages.js"


def embedded_languages() -> list[list[str]]:
    """The [code, name] pairs of `export const LANGUAGES = [...]` in web/js/languages.js."""
    source = LANGUAGES_JS.read_text(encoding="utf-8")
    match = re.search(r"export const LANGUAGES = (\[.*?\n\]);", source, re.S)
    assert match, "web/js/languages.js no longer declares LANGUAGES as a literal list"
    pairs: list[list[str]] = json.loads(re.sub(r",\s*\]$", "]", match.group(1)))
    return pairs


def test_ui_offers_exactly_the_servers_languages() -> None:
    """Same codes, same English names (title-cased), each once."""
    pairs = embedded_languages()
    codes = [code for code, _ in pairs]
    assert len(codes) == len(set(codes))
    assert dict(pairs) == {code: name.title() for code, name in LANGUAGES.items()}


def test_ui_language_list_is_sorted_by_name() -> None:
    """The searchable list reads alphabetically."""
    names = [name for _, name in embedded_languages()]
    assert names == sorted(names)
