"""The live policy study's carry-over policy prompts each pass with the completed turns' text."""

from __future__ import annotations

from typing import Any

from app.bench.live_study import PROMPT_CHARS, carrying_over


async def test_carry_over_puts_the_completed_turns_before_the_prompt_within_its_bound() -> None:
    """Earlier turns' text, then the pass's prompt; its last PROMPT_CHARS only; None if empty."""
    prompts: list[str | None] = []

    async def run_pass(audio: Any, prompt: str | None, config: Any) -> None:
        prompts.append(prompt)

    said: list[str] = []
    run = carrying_over(run_pass, said)
    await run(None, None, None)
    said.append("Ask not.")
    await run(None, "Names: Ada.", None)
    said.append("x" * PROMPT_CHARS)
    await run(None, None, None)
    assert prompts[:2] == [None, "Ask not. Names: Ada."]
    assert prompts[2] == ("Ask not. " + "x" * PROMPT_CHARS)[-PROMPT_CHARS:]
