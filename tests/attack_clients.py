"""Hostile HTTP clients on raw sockets, for the attack tests against a real server process."""

from __future__ import annotations

import socket
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


@dataclass
class SlowUpload:
    """One connection that declares a body and sends it as slowly as it likes."""

    sock: socket.socket
    opened: float

    @classmethod
    def open(cls, url: str, path: str, declared_bytes: int, first: bytes = b"") -> SlowUpload:
        """Send the request head (Content-Length `declared_bytes`) and `first` body bytes."""
        parts = urlsplit(url)
        sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80))
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {declared_bytes}\r\n\r\n"
        ).encode()
        sock.sendall(head + (first or multipart_head()))
        return cls(sock, time.monotonic())

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
        data = b""
        try:
            while not _complete(data):
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (TimeoutError, OSError):
            pass
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


def raw_get(url: str, target: str, timeout_s: float = 30) -> tuple[int | None, float]:
    """GET `target` (any length, sent as-is); the status (None: no answer) and the seconds."""
    parts = urlsplit(url)
    began = time.monotonic()
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80)) as sock:
        sock.sendall(
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode()
        )
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
