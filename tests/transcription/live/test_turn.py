"""The live policy: LocalAgreement-2 commits, final passes, trimming and prompts."""

from __future__ import annotations

import numpy as np
import pytest

from app.transcription.audio import SAMPLE_RATE
from app.transcription.live.turn import LiveTurn, PassResult, agreed_prefix, normalise_word
from app.transcription.types import Word


def words(text: str, *, start: float = 0.0, step: float = 0.5) -> list[Word]:
    """Evenly timed words, each `step` seconds long, from `start`."""
    return [
        Word(start + i * step, start + (i + 1) * step, " " + word, 0.9)
        for i, word in enumerate(text.split())
    ]


def turn_with(seconds: float, *, trim_after_s: float = 15.0) -> LiveTurn:
    """A turn holding `seconds` of (silent) audio."""
    turn = LiveTurn("item_1", start_sample=0, trim_after_s=trim_after_s)
    turn.append(np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32))
    return turn


def test_words_compare_without_case_punctuation_or_spaces() -> None:
    """'Dinner,' and ' dinner' are the same word to the agreement."""
    assert normalise_word(" Dinner,") == normalise_word("dinner")
    assert agreed_prefix(words("a b c"), words("A b, x")) == 2


def test_only_words_two_passes_agree_on_are_committed() -> None:
    """The first pass commits nothing; the second commits the prefix both passes share."""
    turn = turn_with(3)
    turn.begin_pass()
    assert turn.apply(PassResult(words("he hoped there")), final=False) == []
    turn.begin_pass()
    newly = turn.apply(PassResult(words("he hoped their would")), final=False)
    assert [w.word for w in newly] == [" he", " hoped"]
    assert turn.text == "he hoped"
    assert turn.tail == "their would"


def test_committed_words_are_not_repeated_when_their_times_shift() -> None:
    """A later pass that re-reads committed words with earlier times only adds what follows."""
    turn = turn_with(4)
    for _ in range(2):
        turn.begin_pass()
        turn.apply(PassResult(words("he hoped there would")), final=False)
    assert turn.text == "he hoped there would"
    turn.begin_pass()
    shifted = words("he hoped there would be stew", step=0.45)
    turn.apply(PassResult(shifted), final=False)
    turn.begin_pass()
    newly = turn.apply(PassResult(shifted), final=False)
    assert [w.word for w in newly] == [" be", " stew"]


def test_the_final_pass_commits_every_remaining_word() -> None:
    """A closed turn's last pass commits the whole rest, agreed or not."""
    turn = turn_with(2)
    turn.begin_pass()
    turn.apply(PassResult(words("ask not")), final=False)
    turn.close()
    turn.begin_pass()
    newly = turn.apply(PassResult(words("ask not what your country")), final=True)
    assert turn.text == "ask not what your country"
    assert len(newly) == 5
    assert turn.tail == ""


def test_a_revising_final_pass_replaces_the_committed_words_its_rest_is_the_last_delta() -> None:
    """A stronger model's final pass: its words are the turn's text; those after the committed
    ones are the last delta (so the deltas hold every word of the turn)."""
    turn = turn_with(2)
    for _ in range(2):
        turn.begin_pass()
        turn.apply(PassResult(words("stuffered into")), final=False)
    turn.close()
    turn.begin_pass()
    newly = turn.apply(PassResult(words("stuff it into you")), final=True, revise=True)
    assert [word.word for word in newly] == [" you"]
    assert turn.text == "stuff it into you"
    assert turn.tail == ""


def test_a_revising_final_pass_keeps_the_trimmed_words_and_a_silent_one_changes_nothing() -> None:
    """Words of audio trimmed away stay; a revision that hears no word keeps the committed."""
    turn = turn_with(16, trim_after_s=15)
    said = words(" ".join(f"w{i}" for i in range(20)), step=0.5)
    for _ in range(2):
        turn.begin_pass()
        turn.apply(PassResult(said, segment_ends=[5.0, 10.0]), final=False)
    turn.close()
    turn.begin_pass()
    assert turn.apply(PassResult([]), final=True, revise=True) == []
    assert turn.text == " ".join(f"w{i}" for i in range(20))
    turn.begin_pass()
    newly = turn.apply(PassResult(words("late words")), final=True, revise=True)
    assert [word.word for word in newly] == [" late", " words"]
    assert turn.text == " ".join(f"w{i}" for i in range(20)) + " late words"
    assert turn.committed[-1].start == pytest.approx(10.5)


def test_closed_turns_take_no_more_audio() -> None:
    """Audio after the turn closed belongs to the next turn."""
    turn = turn_with(1)
    turn.close()
    turn.append(np.ones(SAMPLE_RATE, dtype=np.float32))
    assert turn.total_samples == SAMPLE_RATE


def test_long_audio_is_trimmed_at_a_committed_segment_end_and_prompts_with_what_went() -> None:
    """Past trim_after_s the kept audio starts after a fully committed segment."""
    turn = turn_with(16, trim_after_s=15)
    said = words(" ".join(f"w{i}" for i in range(20)), step=0.5)  # ends at 10 s
    for _ in range(2):
        turn.begin_pass()
        turn.apply(PassResult(said, segment_ends=[5.0, 10.0]), final=False)
    assert turn.offset_s == 10.0
    assert turn.total_samples == 16 * SAMPLE_RATE
    assert len(turn.audio) == 6 * SAMPLE_RATE
    prompt = turn.prompt("earlier turn")
    assert prompt is not None
    assert prompt.startswith("earlier turn w0")
    assert prompt.endswith("w19")


def test_the_prompt_leaves_out_committed_words_still_in_the_audio() -> None:
    """Whisper skips audio whose words the prompt holds: kept words stay out of it."""
    turn = turn_with(3)
    for _ in range(2):
        turn.begin_pass()
        turn.apply(PassResult(words("he hoped")), final=False)
    assert turn.text == "he hoped"
    assert turn.prompt("before") == "before"
    assert turn.prompt() is None


def test_new_audio_is_measured_from_the_start_of_the_last_pass() -> None:
    """A pass is due once enough audio came in after the previous one began."""
    turn = turn_with(1)
    assert turn.new_audio_s() == 1.0
    turn.begin_pass()
    assert turn.new_audio_s() == 0.0
    turn.append(np.zeros(SAMPLE_RATE // 2, dtype=np.float32))
    assert turn.new_audio_s() == 0.5


def test_a_pass_with_context_keeps_only_the_words_mostly_inside_its_turn() -> None:
    """Context before (0.5 s), look-ahead past 2 s: the context's words and those starting in
    the look-ahead are left out."""
    from app.transcription.live.turn import framed

    heard = [
        Word(0.0, 0.4, " before", 0.9),  # all in the context
        Word(0.3, 0.9, " straddles", 0.9),  # middle 0.6: inside (0.1 s into the turn)
        Word(1.0, 2.0, " inside", 0.9),
        Word(2.3, 2.7, " whole", 0.9),  # starts before the cut (2.5): this turn's, whole
        Word(2.6, 2.9, " next", 0.9),  # starts in the look-ahead: the next turn's
    ]
    result = framed(PassResult(words=heard, segment_ends=[0.4, 2.7]), 0.5, 2.0)
    assert [w.word for w in result.words] == [" straddles", " inside", " whole"]
    assert result.words[0].start == 0.0 and result.words[1].start == pytest.approx(0.5)
    assert result.segment_ends == [pytest.approx(2.2)]


def test_a_closing_formula_squeezed_into_the_end_of_speech_is_left_out() -> None:
    """'Thank you.' starting in the speech's last moments is Whisper's habit; said, it stays."""
    from app.transcription.live.turn import without_closing_formula

    said = [Word(0.0, 0.5, " Ask", 0.9), Word(0.5, 1.2, " country.", 0.9)]
    squeezed = [Word(1.2, 1.4, " Thank", 0.6), Word(1.4, 1.45, " you.", 0.6)]
    assert without_closing_formula(said + squeezed, speech_end_s=1.25) == said
    spoken = [Word(1.3, 1.6, " Thank", 0.9), Word(1.6, 2.0, " you.", 0.9)]
    assert without_closing_formula(said + spoken, speech_end_s=2.1) == said + spoken
    after = [Word(2.5, 2.8, " Okay", 0.5)]
    assert without_closing_formula(said + after, speech_end_s=1.25) == said


def test_the_next_turn_leaves_out_by_text_what_the_cut_turn_already_said() -> None:
    """A pass hearing 0.6 s of the previous turn: the run that turn ended with goes, the rest
    stays, whatever the times say; without such a run, the context's words go by time."""
    from app.transcription.live.turn import unrepeated

    before = [Word(0.0, 0.3, " can", 0.9), Word(0.3, 0.5, " do", 0.9), Word(0.5, 0.7, " for", 0.9)]
    heard = [
        Word(0.0, 0.2, " o", 0.5),  # garbled by the cut into the context
        Word(0.2, 0.4, " for", 0.9),
        Word(0.4, 0.9, " you", 0.9),  # its middle is in the context: kept all the same
        Word(0.9, 1.2, " ask", 0.9),
    ]
    assert [w.word for w in unrepeated(heard, before, 0.6)] == [" you", " ask"]
    other = [Word(0.0, 0.3, " elsewhere", 0.9)]
    assert [w.word for w in unrepeated(heard, other, 0.6)] == [" you", " ask"]
    assert [w.word for w in unrepeated(heard[2:], other, 0.8)] == [" ask"]
