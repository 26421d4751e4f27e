"""Tests for language codes and names (app.transcription.languages)."""

from __future__ import annotations

import pytest

from app.transcription.languages import (
    LANGUAGES,
    UnknownLanguageError,
    language_name,
    normalise_language,
)


@pytest.mark.parametrize("code", ["en", "de", "fr", "ja", "haw", "yue", "jw"])
def test_codes_are_returned_unchanged(code: str) -> None:
    """A Whisper language code normalises to itself."""
    assert normalise_language(code) == code


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("German", "de"),
        ("german", "de"),
        ("ENGLISH", "en"),
        ("  French ", "fr"),
        ("haitian creole", "ht"),
        ("Cantonese", "yue"),
    ],
)
def test_english_names_map_to_codes(value: str, code: str) -> None:
    """English language names, in any case and with blanks around, give their code."""
    assert normalise_language(value) == code


@pytest.mark.parametrize(
    ("value", "code"),
    [("Mandarin", "zh"), ("castilian", "es"), ("Flemish", "nl"), ("burmese", "my")],
)
def test_alternative_names_map_to_codes(value: str, code: str) -> None:
    """Whisper's alternative language names are accepted too."""
    assert normalise_language(value) == code


@pytest.mark.parametrize(
    ("value", "code"),
    [("en-US", "en"), ("pt_BR", "pt"), ("DE-at", "de"), ("zh-Hant-TW", "zh")],
)
def test_regional_tags_use_their_language_part(value: str, code: str) -> None:
    """BCP 47 style tags ("en-US", "pt_BR") resolve to their base language code."""
    assert normalise_language(value) == code


@pytest.mark.parametrize("value", [None, "", "   ", "auto", "AUTO", "detect"])
def test_auto_and_empty_mean_detect(value: str | None) -> None:
    """None, blank, "auto" and "detect" all mean: detect the language (None)."""
    assert normalise_language(value) is None


@pytest.mark.parametrize("value", ["klingon", "xx", "xx-US", "english-ish", "e n"])
def test_unknown_language_raises_with_the_list_of_codes(value: str) -> None:
    """An unknown language raises UnknownLanguageError naming it and listing every code."""
    with pytest.raises(UnknownLanguageError) as info:
        normalise_language(value)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert repr(value) in message
    assert "\n" not in message
    listed = message.split(": ", 1)[1].split(", ")
    assert listed == sorted(LANGUAGES)


def test_language_table_has_whisper_s_languages() -> None:
    """The table holds Whisper's 100 languages with unique lower-case names."""
    assert len(LANGUAGES) == 100
    assert len(set(LANGUAGES.values())) == len(LANGUAGES)
    assert all(name == name.lower() for name in LANGUAGES.values())


def test_every_name_round_trips_to_its_code() -> None:
    """normalise_language(language_name(code)) gives the code back for every language."""
    for code in LANGUAGES:
        assert normalise_language(language_name(code)) == code


def test_language_name_falls_back_to_the_code() -> None:
    """language_name gives the English name, and an unknown code unchanged."""
    assert language_name("de") == "german"
    assert language_name("xx") == "xx"
