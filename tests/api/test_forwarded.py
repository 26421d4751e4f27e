"""Reading a proxy's X-Forwarded-* and RFC 7239 Forwarded headers (app.api.forwarded)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.api.forwarded import ForwardedRequest, forwarded_request, parse_forwarded, split_host_port

PROXIES = ipaddress.ip_network("10.0.0.0/8")


def _is_proxy(host: str) -> bool:
    try:
        return ipaddress.ip_address(host) in PROXIES
    except ValueError:
        return False


def _said(**headers: str) -> ForwardedRequest:
    raw = [
        (name.replace("_", "-").lower().encode(), value.encode()) for name, value in headers.items()
    ]
    return forwarded_request(raw, _is_proxy)


def test_parse_forwarded_reads_the_rfc_7239_examples() -> None:
    """Elements split at commas, pairs at semicolons, names case-insensitive, quotes removed."""
    assert parse_forwarded(
        'for="_gazonk", For="[2001:db8:cafe::17]:4711", for=192.0.2.60;proto=http;by=203.0.113.43'
    ) == [
        {"for": "_gazonk"},
        {"for": "[2001:db8:cafe::17]:4711"},
        {"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"},
    ]


def test_parse_forwarded_keeps_separators_inside_quoted_strings() -> None:
    """A comma, semicolon or escaped quote inside a quoted value does not split it."""
    assert parse_forwarded(r'for="a,b;c\"d";proto=https, ;, for=x') == [
        {"for": 'a,b;c"d', "proto": "https"},
        {},
        {"for": "x"},
    ]


@given(st.text(max_size=200))
def test_parse_forwarded_accepts_any_text(value: str) -> None:
    """Whatever a client sends, parsing returns elements instead of raising."""
    assert isinstance(parse_forwarded(value), list)


@pytest.mark.parametrize(
    ("node", "host_port"),
    [
        ("203.0.113.7", ("203.0.113.7", 0)),
        ("203.0.113.7:4711", ("203.0.113.7", 4711)),
        ("[2001:db8::1]:4711", ("2001:db8::1", 4711)),
        ("[2001:db8::1]", ("2001:db8::1", 0)),
        ("2001:db8::1", ("2001:db8::1", 0)),
        ("unknown", ("unknown", 0)),
        ("203.0.113.7:99999", ("203.0.113.7", 0)),
    ],
)
def test_split_host_port(node: str, host_port: tuple[str, int]) -> None:
    """IPv4 with port, bracketed IPv6 with port, bare IPv6 and obfuscated names are split."""
    assert split_host_port(node) == host_port


def test_rightmost_untrusted_hop_is_the_client() -> None:
    """Entries left of the first untrusted hop (from the right) may be forged and are skipped."""
    assert _said(x_forwarded_for="127.0.0.1, 198.51.100.4, 10.0.0.9").client == (
        "198.51.100.4",
        0,
    )
    assert _said(forwarded="for=127.0.0.1, for=198.51.100.4, for=10.0.0.9").client == (
        "198.51.100.4",
        0,
    )


def test_scheme_comes_from_x_forwarded_proto_or_the_client_element() -> None:
    """X-Forwarded-Proto sets the scheme, else the Forwarded element that named the client."""
    assert _said(x_forwarded_proto="https") == ForwardedRequest(client=None, scheme="https")
    assert _said(forwarded="for=198.51.100.4;proto=https, for=10.0.0.9;proto=http").scheme == (
        "https"
    )
    assert _said(x_forwarded_proto="gopher").scheme is None
    assert _said(forwarded="for=198.51.100.4;proto=ftp").scheme is None


def test_disagreeing_headers_name_nobody() -> None:
    """X-Forwarded-For and Forwarded naming different clients are both ignored, scheme too."""
    assert (
        _said(x_forwarded_for="198.51.100.4", forwarded="for=127.0.0.1", x_forwarded_proto="https")
        == ForwardedRequest()
    )
    assert _said(x_forwarded_for="198.51.100.4", forwarded='for="198.51.100.4:1"').client == (
        "198.51.100.4",
        0,
    )


def test_empty_headers_name_nobody() -> None:
    """Empty X-Forwarded-For or a Forwarded without for= leaves the client alone."""
    assert _said(x_forwarded_for=" ").client is None
    assert _said(forwarded="proto=https;by=10.0.0.1").client is None
