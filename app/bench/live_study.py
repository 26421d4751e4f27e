"""`whisper-api bench live-study`: the live quality policies at ideal pace (issue 27).

The session's own code (`LiveSession`, the Silero detector at OpenAI's defaults,
`whisper_pass` on one thread) is fed each scenario's audio in 100 ms chunks in this
process, every pass finishing before the next chunk: passes hear exactly the pass
interval's audio more each time, so the machine's load cannot change the result
(`whisper-api bench --only live` measures the same at real-time pace, through a
server). Scenarios: jfk twice, the eight held-out read utterances, and the 120 s
TED-LIUM clip (spontaneous speech). Policies:

- `live`: the default (the live model's passes, the client's prompt only);
- `carry-over`: each pass also prompted with the completed turns' text (the policy
  before round 4 of the issue);
- `final base`: a final pass of each finished turn by `base` (LIVE_FINAL_MODEL).

It prints a Markdown table of the completed turns' WER, and each model's offline WER
on the same audio whole (beam 1 at temperature 0, and beam 5 with the ladder).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from app.bench.live import RATE, READ_SPEECH, Scenario, spoken
from app.bench.measure import JFK, word_error_rate

__all__ = ["POLICIES", "carried_prompt", "carrying_over", "main"]

Samples = npt.NDArray[np.float32]
PassFn = Callable[[Samples, str | None, Any], Awaitable[Any]]
POLICIES = ("live", "carry-over", "final base")
TED = "en_longform_tedlium_120s.flac"
# How much earlier text the carry-over policy put in a prompt (the live path's bound).
PROMPT_CHARS = 200


def carried_prompt(said: list[str], prompt: str | None) -> str | None:
    """The completed turns' text, then a pass's own prompt: its last PROMPT_CHARS."""
    text = " ".join(part for part in (" ".join(said), prompt) if part).strip()
    return text[-PROMPT_CHARS:] or None


def carrying_over(run_pass: PassFn, said: list[str]) -> PassFn:
    """`run_pass` with the completed turns' text (`said`, as it grows) before each prompt."""

    async def run(audio: Samples, prompt: str | None, config: Any) -> Any:
        return await run_pass(audio, carried_prompt(said, prompt), config)

    return run


def _audio16(scenario: Scenario) -> Samples:
    pcm = np.frombuffer(scenario.pcm, dtype=np.int16).astype(np.float32) / 32768.0
    positions = np.arange(0, len(pcm), RATE / 16000)
    resampled: Samples = np.interp(positions, np.arange(len(pcm)), pcm).astype(np.float32)
    return resampled


async def _stream(scenario: Scenario, policy: str, models: dict[str, Any], scorer: Any) -> str:
    """The completed turns of one scenario under one policy, at ideal pace."""
    from app.clock import SystemClock
    from app.transcription.live.events import Completed, LiveEvent
    from app.transcription.live.passes import whisper_pass
    from app.transcription.live.session import LiveConfig, LiveSession

    said: list[str] = []
    running, finished = [0], asyncio.Event()  # passes under way; set as each one ends

    async def emit(event: LiveEvent) -> None:
        if isinstance(event, Completed) and event.transcript:
            said.append(event.transcript)

    async def run_pass(audio: Samples, prompt: str | None, config: LiveConfig) -> Any:
        running[0] += 1
        try:
            blocking = whisper_pass(models[config.model or "tiny.en"], "en")
            return await asyncio.to_thread(blocking, audio, prompt)
        finally:
            running[0] -= 1
            finished.set()

    config = LiveConfig(language="en", final_model="base" if policy == "final base" else None)
    passes = carrying_over(run_pass, said) if policy == "carry-over" else run_pass
    session = LiveSession(config, run_pass=passes, emit=emit, clock=SystemClock(), scorer=scorer)
    runner = asyncio.create_task(session.run())
    step = round(0.1 * RATE) * 2
    for start in range(0, len(scenario.pcm), step):
        await session.append(scenario.pcm[start : start + step])
        while running[0] or session.pass_due:  # the pass this chunk made due, finished
            finished.clear()
            await finished.wait()
    await session.commit()
    await session.settled()
    runner.cancel()
    return " ".join(said)


def _offline(scenario: Scenario, model: Any, beam_size: int) -> float:
    from app.transcription.types import TranscribeOptions

    options = (
        TranscribeOptions(language="en", beam_size=1, temperature=0.0)
        if beam_size == 1
        else TranscribeOptions(language="en", beam_size=beam_size)
    )
    text = model.transcribe(_audio16(scenario), options, lambda *_: None, lambda: False).text
    return word_error_rate(scenario.reference, text)


def main(argv: list[str] | None = None) -> int:
    """Run every policy on every scenario; print the Markdown table."""
    from app.config import load_settings
    from app.transcription.live.audio import silero_scorer
    from app.transcription.models.loading import load_faster_whisper
    from app.transcription.models.placement import Placement
    from app.transcription.models.sources import ModelSources

    settings = load_settings({}, log_file="", allow_download=False)
    sources = ModelSources(
        model_dir=settings.model_dir, cache_dir=settings.model_cache_dir, allow_download=False
    )
    placement = Placement(device="cpu", compute_type="int8")
    models = {
        name: load_faster_whisper(sources.locate(name), placement, cpu_threads=1)
        for name in ("tiny.en", "base")
    }
    scorer = silero_scorer()
    chosen = [
        spoken("jfk twice", (JFK, JFK), gap_s=1.0),
        spoken("read speech", READ_SPEECH, gap_s=1.0),
        spoken("TED 120 s", (TED,), gap_s=1.0),
    ]
    print("| policy | " + " | ".join(scenario.name for scenario in chosen) + " |")
    print("|---|" + "---|" * len(chosen))
    for policy in POLICIES:
        wers = [
            word_error_rate(s.reference, asyncio.run(_stream(s, policy, models, scorer)))
            for s in chosen
        ]
        print(f"| {policy} | " + " | ".join(f"{100 * wer:.1f} %" for wer in wers) + " |")
    for name, model in models.items():
        cells = [
            f"{100 * _offline(s, model, 1):.1f} % / {100 * _offline(s, model, 5):.1f} %"
            for s in chosen
        ]
        print(f"| offline {name}, beam 1 / 5 | " + " | ".join(cells) + " |")
    return 0
