"""`whisper-api bench --only live` prints issue 27's figures in one table."""

from __future__ import annotations

from app.bench.live import live_table
from app.bench.measure import Row

SPEECH = Row(
    "live: read speech", "live alone", 54.6, 55.0, p95_s=2.5, wer=0.055,
    extra={
        "words": 126, "mean_delay_s": 1.5, "first_word_s": 1.4, "out_of_order": 0,
        "keep_s": 0.6, "offline_wer": 0.047, "offline_wer_beam5": 0.039,
    },
)  # fmt: skip
NOISE = Row(
    "live: silence and room noise", "live alone", 300.0, 30.0, extra={
        "words": 0, "mean_delay_s": None, "first_word_s": None, "out_of_order": 0,
        "keep_s": None, "invented_words": 0,
    },
)  # fmt: skip


def test_the_live_table_has_every_figure_of_the_issue_per_scenario() -> None:
    """WER and offline WER, first word, mean and p95 delay, invented, out of order, keep."""
    lines = live_table([SPEECH, NOISE]).splitlines()
    assert lines[0] == (
        "| scenario | run | WER | offline WER (beam 1 / 5) | first word | mean delay | p95 "
        "| invented | out of order | keep |"
    )
    assert lines[2] == (
        "| read speech | alone | 5.5 % | 4.7 % / 3.9 % | 1.40 s | 1.50 s | 2.50 s |  | 0 | 0.60 s |"
    )
    assert lines[3] == "| silence and room noise | alone |  |  |  |  |  | 0 | 0 |  |"
    assert len(lines) == 4
