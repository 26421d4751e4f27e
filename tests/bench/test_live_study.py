"""The live policy study's carry-over policy prompts each pass with the completed turns' text."""

from __future__ import annotations

from app.bench.live_study import PROMPT_CHARS, carried_prompt


def test_carry_over_puts_the_completed_turns_before_the_prompt_within_its_bound() -> None:
    """Earlier turns' text, then the pass's prompt; its last PROMPT_CHARS only; None if empty."""
    assert carried_prompt([], None) is None
    assert carried_prompt(["Ask not."], "Names: Ada.") == "Ask not. Names: Ada."
    long = ["Ask not.", "x" * PROMPT_CHARS]
    assert carried_prompt(long, None) == ("Ask not. " + "x" * PROMPT_CHARS)[-PROMPT_CHARS:]
