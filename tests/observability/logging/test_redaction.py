"""Scrubbing free text: what it removes, and that it takes linear time on any input."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from re import _constants as sre_constants  # the parsed form of a pattern, to check its repeats
from re import _parser as sre_parser
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.observability.logging.redaction import TEXT_PATTERNS, scrub_text

# The e-mail pattern as first written (quadratic on long runs): a reference on small inputs.
REFERENCE_EMAIL = re.compile(r"[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# Characters that make the patterns work hardest: parts of addresses, ids, IPs and queries.
ADVERSARIAL = 'a1f.@-_+:?=&;/% "<>#[]é'
# Large enough that one scrub takes milliseconds, not the clock's noise.
SMALL = 50_000
SIZES_APART = 10
# Linear work grows 10x for 10x input; quadratic work 100x. 30x leaves room for noise.
MAX_GROWTH = 30


def _repeat(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def _fastest_of_three(function: Callable[[], object]) -> float:
    """CPU time of this process, so that other busy processes on the machine do not count."""
    timings = []
    for _ in range(3):
        started = time.process_time()
        function()
        timings.append(time.process_time() - started)
    return min(timings)


def _growth(unit: str, *, tail: str = "", size: int = SMALL) -> float:
    """How much longer scrubbing takes when the input (`unit` repeated, `tail`) is 10x longer."""
    small = _repeat(unit, size) + tail
    large = _repeat(unit, size * SIZES_APART) + tail
    small_s = _fastest_of_three(lambda: scrub_text(small))
    large_s = _fastest_of_three(lambda: scrub_text(large))
    return large_s / max(small_s, 1e-6)


def _repeats(parsed: Any) -> Iterator[tuple[Any, int]]:
    """Every repeat in a parsed pattern, with its operator and its upper bound."""
    for op, argument in parsed:
        if op in (
            sre_constants.MAX_REPEAT,
            sre_constants.MIN_REPEAT,
            sre_constants.POSSESSIVE_REPEAT,
        ):
            _low, high, inner = argument
            yield op, high
            yield from _repeats(inner)
        elif op in (sre_constants.SUBPATTERN,):
            yield from _repeats(argument[-1])
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            yield from _repeats(argument[1])
        elif op is sre_constants.ATOMIC_GROUP:
            yield from _repeats(argument)
        elif op is sre_constants.BRANCH:
            for branch in argument[1]:
                yield from _repeats(branch)


@pytest.mark.parametrize("pattern", TEXT_PATTERNS, ids=lambda pattern: pattern.pattern[:30])
def test_no_pattern_can_backtrack_over_an_unbounded_run(pattern: re.Pattern[str]) -> None:
    """Every unbounded repeat is possessive; backtracking repeats have a small fixed bound."""
    for op, high in _repeats(sre_parser.parse(pattern.pattern)):
        if op is not sre_constants.POSSESSIVE_REPEAT:
            assert high != sre_constants.MAXREPEAT, pattern.pattern
            assert high <= 64, pattern.pattern


@pytest.mark.parametrize(
    ("unit", "tail"),
    [
        ("a@a.a", ""),  # e-mails back to back
        ("@", ""),
        ("a", "@"),  # one long local part, then an @ without a domain
        ("a", "@x"),
        ("a.", "@"),  # a long dotted name
        ("a@a", ""),  # domains without a dot
        ("x", "@a"),
        ("1.", ""),
        ("1.2.3.4.", ""),
        ("a:", ""),
        ("::", ""),
        ("f", ":"),  # a long hex run: no id
        ("0123456789abcdef-", ""),
        ("a?b=", ""),
        ("/?", ""),
        ("a@a.a?x=y&", ""),
    ],
)
def test_scrubbing_time_grows_linearly_with_adversarial_input(unit: str, tail: str) -> None:
    """10x the input (500 KB of e.g. 'a@a.a' or '@') takes far less than 100x the time."""
    assert _growth(unit, tail=tail) < MAX_GROWTH


@settings(max_examples=10, deadline=None)
@given(
    unit=st.text(alphabet=ADVERSARIAL, min_size=1, max_size=7),
    tail=st.text(alphabet=ADVERSARIAL, max_size=3),
)
def test_scrubbing_time_grows_linearly_for_any_repeated_text(unit: str, tail: str) -> None:
    """Whatever short text is repeated to 200 KB (then a short tail), scrubbing grows linearly."""
    assert _growth(unit, tail=tail, size=20_000) < MAX_GROWTH


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=ADVERSARIAL, max_size=80))
def test_scrubbed_text_holds_no_email_and_is_stable(text: str) -> None:
    """No e-mail survives scrubbing, and scrubbing scrubbed text changes nothing."""
    scrubbed = scrub_text(text)
    assert REFERENCE_EMAIL.search(scrubbed) is None
    assert scrub_text(scrubbed) == scrubbed


def test_long_inputs_are_scrubbed_whole() -> None:
    """200 KB of e-mails, a 100 KB local part and a 100 KB query are each scrubbed completely."""
    emails = "a@a.a" * 40_000
    assert "a@a" not in scrub_text(emails)
    assert scrub_text("x" * 100_000 + "@example.org") == "<email>"
    query = "/api/v1/status?task_id=" + "a" * 100_000 + "&lang=en"
    assert scrub_text(query) == "/api/v1/status?task_id=\u2026&lang=\u2026"
    assert scrub_text("@" * 100_000) == "@" * 100_000


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("mail someone@example.org now", "mail <email> now"),
        ("a.b+tag@mail.example.co.uk.", "<email>."),
        ("from 203.0.113.7:5000", "from <ip>:5000"),
        ("from 2001:db8::7 and ::1", "from <ip> and ::1"),
        ("listening on 127.0.0.1:3001", "listening on 127.0.0.1:3001"),
        ("GET /x?a=1&b=2;c", "GET /x?a=\u2026&b=\u2026;\u2026"),
        ("task 0123456789abcdef0123456789abcdef", "task 0123\u2026cdef"),
        ("version 1.2.3", "version 1.2.3"),
    ],
)
def test_scrub_text_examples(text: str, scrubbed: str) -> None:
    """E-mails, client IPs, query values and ids go; loopback and version numbers stay."""
    assert scrub_text(text) == scrubbed
