"""Hostile HTTP clients on raw sockets, for the attack tests against a real server process."""

from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

BOUNDARY = "attack-boundary"


def multipart_head(file_name: str = "a.wav") -> bytes:
    """The start of a multipart body, up to the file's first byte."""
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass
class SlowUpload:
    """One connection that declares a body and sends it as slowly as it likes.

    It asks `Expect: 100-continue` (as curl does for large bodies) and sends its first
    bytes without waiting: the server's interim "100 Continue" then says that the
    application has begun to read the body, that is, holds an upload place for it.
    """

    sock: socket.socket
    opened: float
    received: bytes = b""

    @classmethod
    def open(
        cls,
        url: str,
        path: str,
        declared_bytes: int,
        first: bytes = b"",
        *,
        source: str | None = None,
    ) -> SlowUpload:
        """Send the request head (Content-Length `declared_bytes`) and `first` body bytes.

        `source`: the local address to connect from (127.0.0.2 is another client).
        """
        parts = urlsplit(url)
        sock = socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or 80),
            source_address=(source, 0) if source else None,
        )
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {declared_bytes}\r\nExpect: 100-continue\r\n\r\n"
        ).encode()
        sock.sendall(head + (first or multipart_head()))
        return cls(sock, time.monotonic())

    def wait_read(self, timeout_s: float = 10) -> None:
        """Wait until the server reads the body (its "100 Continue"); fail on any other answer."""
        self.sock.settimeout(timeout_s)
        while len(self.received) < len(CONTINUE) and CONTINUE.startswith(self.received):
            chunk = self.sock.recv(len(CONTINUE) - len(self.received))
            if not chunk:
                break
            self.received += chunk
        if not self.received.startswith(CONTINUE):
            raise AssertionError(f"the server did not start reading the body: {self.received!r}")

    def trickle(self) -> bool:
        """Send one more byte; False once the server has closed the connection."""
        try:
            self.sock.sendall(b"\0")
        except OSError:
            return False
        return True

    def answer(self, timeout_s: float) -> tuple[int | None, bytes, float]:
        """The status, the raw answer, and seconds since the connection opened (None: no answer)."""
        self.sock.settimeout(timeout_s)
        data, self.received = self.received, b""
        try:
            while not _complete(data.removeprefix(CONTINUE)):
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (TimeoutError, OSError):
            pass
        data = data.removeprefix(CONTINUE)
        elapsed = time.monotonic() - self.opened
        if not data.startswith(b"HTTP/1.1 "):
            return None, data, elapsed
        return int(data.split(b" ", 2)[1]), data, elapsed

    def is_closed_by_server(self, timeout_s: float = 2.0) -> bool:
        """Whether the server has closed the connection (end of stream or reset)."""
        self.sock.settimeout(timeout_s)
        try:
            while self.sock.recv(65536):
                pass
        except TimeoutError:
            return False
        except OSError:
            return True
        return True

    def close(self) -> None:
        """Close our end."""
        self.sock.close()


def trickle_until_answered(clients: list[SlowUpload], *, every_s: float, timeout_s: float) -> None:
    """Send each client's next byte every `every_s` until the server has answered (or closed)
    every one of them, for at most `timeout_s`; the answers are left to `answer`."""
    deadline = time.monotonic() + timeout_s
    waiting = list(clients)
    while waiting and time.monotonic() < deadline:
        for client in waiting:
            client.trickle()
        next_byte = min(time.monotonic() + every_s, deadline)
        while waiting and (now := time.monotonic()) < next_byte:
            readable, _, _ = select.select([c.sock for c in waiting], [], [], next_byte - now)
            waiting = [client for client in waiting if client.sock not in readable]


def raw_get(
    url: str, target: str, timeout_s: float = 30, sent: threading.Event | None = None
) -> tuple[int | None, float]:
    """GET `target` (any length, sent as-is); the status (None: no answer) and the seconds.

    `sent` is set once the whole request has been handed to the connection.
    """
    parts = urlsplit(url)
    began = time.monotonic()
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80)) as sock:
        sock.sendall(
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode()
        )
        if sent is not None:
            sent.set()
        sock.settimeout(timeout_s)
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (TimeoutError, OSError):
            pass
    seconds = time.monotonic() - began
    if not data.startswith(b"HTTP/1.1 "):
        return None, seconds
    return int(data.split(b" ", 2)[1]), seconds


def _complete(data: bytes) -> bool:
    """Whether `data` holds a whole answer: the head, and the body its Content-Length names."""
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return len(body) >= int(value.strip())
    return True
