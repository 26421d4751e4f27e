"""The subtitle bench reads an SRT file back into the norms it keeps."""

from __future__ import annotations

import pytest

from app.bench.subtitles import measure_norms

SRT = """1
00:00:00,000 --> 00:00:02,500
And so, my fellow Americans,

2
00:00:02,500 --> 00:00:09,750
ask not what your country can do
for you, ask what you can do

"""
TXT = "And so, my fellow Americans, ask not what your country can do for you, ask what you can do"


def test_norms_of_an_srt_file() -> None:
    """Cues, longest line, most lines, longest cue and the fastest reading speed."""
    norms = measure_norms(SRT, TXT, "en")
    assert norms.cues == 2
    assert norms.longest_line == len("ask not what your country can do")
    assert norms.most_lines == 2
    assert norms.longest_cue_s == pytest.approx(7.25)
    assert norms.fastest_cps == pytest.approx(len("And so, my fellow Americans,") / 2.5)
    assert norms.same_words


def test_a_word_lost_or_changed_is_seen() -> None:
    """Cues that drop or change a word of the txt output do not hold the same words."""
    assert not measure_norms(SRT, TXT + " for your country.", "en").same_words
    assert not measure_norms(SRT.replace("fellow", "follow"), TXT, "en").same_words


def test_unspaced_languages_compare_characters() -> None:
    """Chinese cues broken between characters hold the same words as the txt line."""
    srt = "1\n00:00:00,000 --> 00:00:02,000\n我们今天\n\n2\n00:00:02,000 --> 00:00:04,000\n很高兴\n"
    assert measure_norms(srt, "我们今天很高兴", "zh").same_words
    assert not measure_norms(srt, "我们今天很高兴", "en").same_words
