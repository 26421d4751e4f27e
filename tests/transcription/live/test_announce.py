"""A turn the detector opened is announced once it has a word; one without a word never is."""

from __future__ import annotations

from app.transcription.live.announce import Announcer
from app.transcription.live.events import (
    Cleared,
    Committed,
    Completed,
    Delta,
    LiveEvent,
    SpeechStarted,
    SpeechStopped,
    TurnDropped,
    TurnFailed,
    TurnPending,
)


async def announced(events: list[LiveEvent]) -> list[LiveEvent]:
    """What the client is sent for `events`, in order."""
    sent: list[LiveEvent] = []

    async def emit(event: LiveEvent) -> None:
        sent.append(event)

    announcer = Announcer(emit)
    for event in events:
        await announcer(event)
    return sent


def heard(item: str, previous: str | None = None) -> list[LiveEvent]:
    """The detector's events of one turn up to its commit."""
    return [SpeechStarted(item, 0), SpeechStopped(item, 900), Committed(item, previous)]


async def test_a_detector_turn_without_a_word_is_never_announced() -> None:
    """Pending, then dropped: OpenAI clients see no speech_started, committed or empty completed."""
    sent = await announced([*heard("a"), Completed("a", "", 1.0)])
    assert sent == [TurnPending("a", 0), TurnDropped("a")]


async def test_a_turn_is_announced_at_its_first_word_in_the_original_order() -> None:
    """speech_started, speech_stopped, committed go out just before the first delta."""
    delta = Delta("a", "Ask", [], "")
    sent = await announced([SpeechStarted("a", 0), SpeechStopped("a", 900), delta])
    assert sent == [TurnPending("a", 0), SpeechStarted("a", 0), SpeechStopped("a", 900), delta]


async def test_a_turn_with_words_only_in_its_final_pass_is_announced_before_its_completed() -> None:
    """A short turn's words all come at the end: announced, then completed."""
    sent = await announced([*heard("a"), Completed("a", "Yes.", 0.5)])
    assert sent[1:] == [*heard("a"), Completed("a", "Yes.", 0.5)]


async def test_previous_item_id_skips_a_dropped_turn() -> None:
    """The turn after a dropped one names the last announced item as its previous one."""
    sent = await announced(
        [
            *heard("a"),
            Completed("a", "One.", 1.0),
            *heard("b", "a"),
            Completed("b", "", 1.0),
            *heard("c", "b"),
            Completed("c", "Two.", 1.0),
        ]
    )
    committed = [event for event in sent if isinstance(event, Committed)]
    assert [(c.item_id, c.previous_item_id) for c in committed] == [("a", None), ("c", "a")]
    assert TurnDropped("b") in sent


async def test_a_later_turn_waits_for_an_earlier_undecided_one() -> None:
    """Events go out in the audio's order: b's commit by the client waits until a is decided."""
    sent = await announced(
        [
            *heard("a"),
            SpeechStarted("b", 1000),
            Committed("b", "a"),  # the client committed b: b is announced, after a
            Completed("a", "One.", 1.0),
        ]
    )
    kinds = [(type(event).__name__, getattr(event, "item_id", None)) for event in sent]
    assert kinds == [
        ("TurnPending", "a"),
        ("TurnPending", "b"),
        ("SpeechStarted", "a"),
        ("SpeechStopped", "a"),
        ("Committed", "a"),
        ("Completed", "a"),
        ("SpeechStarted", "b"),
        ("Committed", "b"),
    ]


async def test_a_turn_the_client_commits_is_announced_at_the_commit() -> None:
    """Without the detector's stop, a commit is the client's: announced even before words."""
    sent = await announced([SpeechStarted("a", 0), Committed("a", None)])
    assert sent == [TurnPending("a", 0), SpeechStarted("a", 0), Committed("a", None)]


async def test_turns_opened_without_the_detector_pass_straight_through() -> None:
    """turn_detection null: the client's commit makes the item; even an empty one completes."""
    events: list[LiveEvent] = [Committed("a", None), Completed("a", "", 1.0)]
    assert await announced(events) == events


async def test_clearing_drops_a_pending_turn_and_a_failed_turn_is_announced() -> None:
    """A cleared turn that was never announced is dropped; a failed one is told."""
    sent = await announced(
        [SpeechStarted("a", 0), Cleared(), *heard("b"), TurnFailed("b", "broke")]
    )
    assert sent == [
        TurnPending("a", 0),
        TurnDropped("a"),
        Cleared(),
        TurnPending("b", 0),
        *heard("b"),
        TurnFailed("b", "broke"),
    ]
