"""Who the client is, by a trusted proxy's word: X-Forwarded-For/-Proto and RFC 7239 Forwarded.

Pure functions over the request's raw headers; `app.api.security` decides whether
the peer is a trusted proxy at all and applies the result to the ASGI scope.

Both headers are read the same way. Each proxy appends the address it received
the request from, so the list is read from the right: the first address that is
not itself a trusted proxy is the client (everything left of it may be forged);
when every address is a trusted proxy, the leftmost one is. The scheme is
X-Forwarded-Proto's, or the ``proto=`` of the Forwarded element that named the
client.

A request may carry both headers, e.g. when a proxy maintains one and passes a
forged other through. If they name different clients neither is believed: the
client stays the proxy itself (unknown), which grants nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["ForwardedRequest", "forwarded_request", "parse_forwarded", "split_host_port"]

SCHEMES = frozenset({"http", "https", "ws", "wss"})

Headers = Iterable[tuple[bytes, bytes]]
IsTrusted = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class ForwardedRequest:
    """What a trusted proxy said: the client (host, port) and the scheme, each if said."""

    client: tuple[str, int] | None = None
    scheme: str | None = None


@dataclass(frozen=True, slots=True)
class _Hop:
    """One proxy's record: whom it received the request from, and over which scheme."""

    node: str
    proto: str | None = None


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    """Split at `separator` where it is not inside a quoted string (one pass, linear)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    """A token as is; a quoted string without its quotes and backslash escapes."""
    value = value.strip()
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    chars: list[str] = []
    escaped = False
    for char in value[1:-1]:
        if char == "\\" and not escaped:
            escaped = True
            continue
        chars.append(char)
        escaped = False
    return "".join(chars)


def parse_forwarded(value: str) -> list[dict[str, str]]:
    """RFC 7239 elements, left to right, as {parameter (lower case): unquoted value}."""
    elements = []
    for element in _split_outside_quotes(value, ","):
        pairs: dict[str, str] = {}
        for pair in _split_outside_quotes(element, ";"):
            name, equals, raw = pair.partition("=")
            if equals and name.strip():
                pairs[name.strip().lower()] = _unquote(raw)
        elements.append(pairs)
    return elements


def split_host_port(node: str) -> tuple[str, int]:
    """``203.0.113.7:4711`` / ``[2001:db8::1]:4711`` / ``2001:db8::1`` -> host and port (0)."""
    node = node.strip()
    if node.startswith("["):
        host, bracket, rest = node[1:].partition("]")
        if not bracket:
            return node, 0
        return host, _port(rest[1:]) if rest.startswith(":") else 0
    if node.count(":") == 1:
        host, _, port = node.partition(":")
        return host, _port(port)
    return node, 0


def _port(text: str) -> int:
    return int(text) if text.isdigit() and int(text) <= 65535 else 0


def _header_values(headers: Headers, name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in headers if key == name]


def _x_forwarded_hops(headers: Headers) -> tuple[list[_Hop], str | None]:
    nodes = [
        node.strip()
        for value in _header_values(headers, b"x-forwarded-for")
        for node in value.split(",")
    ]
    protos = _header_values(headers, b"x-forwarded-proto")
    proto = protos[-1].strip().lower() if protos else None
    return [_Hop(node) for node in nodes if node], proto


def _forwarded_hops(headers: Headers) -> list[_Hop]:
    hops = []
    for value in _header_values(headers, b"forwarded"):
        for element in parse_forwarded(value):
            node = element.get("for", "").strip()
            if node:
                proto = element.get("proto")
                hops.append(_Hop(node, proto.strip().lower() if proto else None))
    return hops


def _client_hop(hops: list[_Hop], is_trusted: IsTrusted) -> _Hop | None:
    """The rightmost hop that is not a trusted proxy; the leftmost when all are."""
    for hop in reversed(hops):
        if not is_trusted(split_host_port(hop.node)[0]):
            return hop
    return hops[0] if hops else None


def _disagree(first: _Hop | None, second: _Hop | None) -> bool:
    if first is None or second is None:
        return False
    return split_host_port(first.node)[0] != split_host_port(second.node)[0]


def forwarded_request(headers: Headers, is_trusted: IsTrusted) -> ForwardedRequest:
    """The client and scheme named by X-Forwarded-* and/or Forwarded (nothing if they disagree)."""
    headers = list(headers)
    x_hops, x_proto = _x_forwarded_hops(headers)
    x_hop = _client_hop(x_hops, is_trusted)
    rfc_hop = _client_hop(_forwarded_hops(headers), is_trusted)
    if _disagree(x_hop, rfc_hop):
        return ForwardedRequest()  # one of them is forged; believing either could let it in
    hop = x_hop or rfc_hop
    scheme = x_proto if x_proto in SCHEMES else (hop.proto if hop is not None else None)
    return ForwardedRequest(
        client=split_host_port(hop.node) if hop is not None else None,
        scheme=scheme if scheme in SCHEMES else None,
    )
