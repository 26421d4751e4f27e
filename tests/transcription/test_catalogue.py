"""Tests for the model catalogue (app.transcription.catalogue)."""

from __future__ import annotations

import pytest

from app.transcription.catalogue import (
    CATALOGUE,
    MODEL_NAMES,
    UnknownModelError,
    canonical_model_name,
    model_rank,
    spec,
)

DESIGN_NAMES = {
    "tiny",
    "tiny.en",
    "base",
    "base.en",
    "small",
    "small.en",
    "medium",
    "medium.en",
    "large-v1",
    "large-v2",
    "large-v3",
    "large-v3-turbo",
    "distil-large-v3",
}


def test_catalogue_holds_exactly_the_designed_model_names() -> None:
    """The catalogue knows faster-whisper's thirteen names from the design, each once."""
    assert set(MODEL_NAMES) == DESIGN_NAMES
    assert len(MODEL_NAMES) == len(DESIGN_NAMES)


def test_catalogue_is_ordered_smallest_first() -> None:
    """Size order runs tiny.en first and large-v3 last, with each .en just before its sibling."""
    assert MODEL_NAMES[0] == "tiny.en"
    assert MODEL_NAMES[-1] == "large-v3"
    for family in ("tiny", "base", "small", "medium"):
        assert model_rank(family + ".en") + 1 == model_rank(family)
    assert model_rank("tiny") < model_rank("base") < model_rank("small") < model_rank("medium")
    assert model_rank("medium") < model_rank("large-v3-turbo") < model_rank("large-v1")
    assert model_rank("large-v1") < model_rank("large-v2") < model_rank("large-v3")


def test_model_rank_matches_position_in_catalogue() -> None:
    """model_rank is the index of the model in CATALOGUE, 0 for the smallest."""
    assert [model_rank(m.name) for m in CATALOGUE] == list(range(len(CATALOGUE)))


@pytest.mark.parametrize(
    ("name", "multilingual"),
    [
        ("tiny.en", False),
        ("base.en", False),
        ("small.en", False),
        ("medium.en", False),
        ("distil-large-v3", False),
        ("tiny", True),
        ("base", True),
        ("medium", True),
        ("large-v3-turbo", True),
        ("large-v3", True),
    ],
)
def test_spec_reports_which_models_are_multilingual(name: str, multilingual: bool) -> None:
    """English-only models (.en and distil-large-v3) are flagged as not multilingual."""
    assert spec(name).multilingual is multilingual


def test_vram_estimates_grow_within_each_family() -> None:
    """A bigger model of the same line never needs less GPU memory than a smaller one."""
    line = ["tiny", "base", "small", "medium", "large-v1", "large-v2", "large-v3"]
    needs = [spec(name).vram_mib for name in line]
    assert needs == sorted(needs)
    assert all(m.vram_mib > 0 for m in CATALOGUE)


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("turbo", "large-v3-turbo"),
        ("TURBO", "large-v3-turbo"),
        (" large ", "large-v3"),
        ("Medium.EN", "medium.en"),
        ("base", "base"),
    ],
)
def test_canonical_model_name_resolves_aliases_and_case(alias: str, canonical: str) -> None:
    """Aliases, upper case and surrounding blanks map to the catalogue name."""
    assert canonical_model_name(alias) == canonical


def test_spec_and_rank_accept_aliases() -> None:
    """spec() and model_rank() look an alias up as its canonical model."""
    assert spec("turbo").name == "large-v3-turbo"
    assert model_rank("turbo") == MODEL_NAMES.index("large-v3-turbo")


@pytest.mark.parametrize("name", ["huge", "", "large-v4", "tiny-en", "whisper-1"])
def test_unknown_model_names_raise(name: str) -> None:
    """A name outside the catalogue raises UnknownModelError (a ValueError) naming it."""
    with pytest.raises(UnknownModelError) as info:
        canonical_model_name(name)
    assert isinstance(info.value, ValueError)
    assert str(info.value) == name
    with pytest.raises(UnknownModelError):
        model_rank(name)
    with pytest.raises(UnknownModelError):
        spec(name)
