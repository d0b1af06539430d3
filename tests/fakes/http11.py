"""Hand-written HTTP/1.1 on asyncio streams, for fake upstreams that must fail below HTTP.

Owns: reading one request (request line, headers, Content-Length or chunked body), writing
responses byte by byte (fixed length or chunked), and the socket-level misbehaviours a real HTTP
library would not let us produce: a reset (RST via ``SO_LINGER`` 0), a close in the middle of a
body, a response that never comes. Each connection keeps a :class:`ConnectionRecord` so tests can
assert on what happened at the TCP level (who closed first, bytes written, requests served).

No routing and no provider knowledge live here; see ``openai_upstream.py`` for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import struct
import termios
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

MAX_HEAD_BYTES = 64 * 1024
"""Largest request head (request line + headers) accepted; the StreamReader limit must be >= this."""


class BadRequest(Exception):
    """The peer sent bytes that are not an HTTP/1.1 request we can parse."""


@dataclass(frozen=True)
class HttpRequest:
    """One parsed request. Header names are lowercased; repeated headers are joined with ``", "``."""

    method: str
    target: str
    path: str
    query: str
    version: str
    headers: dict[str, str]
    body: bytes
    head_size: int

    @property
    def keep_alive(self) -> bool:
        """Whether the client allows another request on this connection (RFC 9112 §9.3)."""
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


@dataclass
class ConnectionRecord:
    """What one accepted TCP connection did. Mutated on the server loop; read copies elsewhere.

    ``peer_closed_first`` is True when we saw EOF or a reset from the client before we closed;
    ``reset_by_us`` when we aborted it with an RST.
    """

    id: int
    opened_at: float
    closed_at: float | None = None
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    peer_closed_first: bool = False
    reset_by_us: bool = False


async def read_request(reader: asyncio.StreamReader) -> HttpRequest | None:
    """Read one request; ``None`` on a clean EOF before any byte of it (keep-alive close).

    Raises :class:`BadRequest` on malformed or truncated input, ``ConnectionError`` on a reset.
    """
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise BadRequest("connection closed inside the request head") from exc
    except asyncio.LimitOverrunError as exc:
        raise BadRequest("request head too large") from exc
    if len(head) > MAX_HEAD_BYTES:
        raise BadRequest("request head too large")
    lines = head[:-4].decode("latin-1").lstrip("\r\n").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(f"bad request line {lines[0]!r}")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(f"bad header line {line!r}")
        key = name.lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    body = await _read_body(reader, headers)
    path, _, query = target.partition("?")
    return HttpRequest(method, target, path, query, version, headers, body, len(head))


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    try:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return await _read_chunked(reader)
        length_text = headers.get("content-length", "0")
        if not length_text.isdigit():
            raise BadRequest(f"bad content-length {length_text!r}")
        return await reader.readexactly(int(length_text))
    except asyncio.IncompleteReadError as exc:
        raise BadRequest("connection closed inside the request body") from exc


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise BadRequest(f"bad chunk size {size_line!r}") from exc
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return bytes(body)
        body += (await reader.readexactly(size + 2))[:-2]


def status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    return f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")


def encode_head(status: int, headers: Iterable[tuple[str, str]]) -> bytes:
    """Status line and header block, ending with the blank line."""
    lines = b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers)
    return status_line(status) + lines + b"\r\n"


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a ``Transfer-Encoding: chunked`` body (``data`` must not be empty)."""
    return f"{len(data):x}\r\n".encode("ascii") + data + b"\r\n"


LAST_CHUNK = b"0\r\n\r\n"


class Conn:
    """One server-side connection: byte accounting, resets, and waiting while watching the peer."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        record: ConnectionRecord,
        on_change: Callable[[], None],
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.record = record
        self._on_change = on_change
        self.closed = False

    async def send(self, data: bytes) -> None:
        """Write and drain, so each call reaches the socket as its own write."""
        self.writer.write(data)
        self.record.bytes_out += len(data)
        await self.writer.drain()

    async def send_head(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        await self.send(encode_head(status, headers))

    async def send_chunk(self, data: bytes) -> None:
        await self.send(encode_chunk(data))

    async def end_chunks(self) -> None:
        await self.send(LAST_CHUNK)

    async def flush(self, timeout: float = 0.5) -> None:
        """Wait (bounded) until written bytes left the transport buffer and the peer's kernel
        acknowledged them (Linux ``SIOCOUTQ`` = 0), so a following reset cannot discard them.
        A client that does not read will not be waited for longer than ``timeout``."""
        deadline = time.monotonic() + timeout
        sock: Any = self.writer.get_extra_info("socket")
        while time.monotonic() < deadline:
            unsent = self.writer.transport.get_write_buffer_size()
            if unsent == 0 and sock is not None:
                with contextlib.suppress(OSError):
                    raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
                    unsent = struct.unpack("i", raw)[0]
            if unsent == 0:
                return
            await asyncio.sleep(0.001)

    def reset(self) -> None:
        """Abort with an RST: ``SO_LINGER`` on with a zero timeout, then close at once."""
        if self.closed:
            return
        sock: Any = self.writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.record.reset_by_us = True
        self.writer.transport.abort()
        self.mark_closed()

    async def close(self) -> None:
        """Close with a FIN (after flushing what was written)."""
        if self.closed:
            return
        self.writer.close()
        self.mark_closed()
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await self.writer.wait_closed()

    def peer_closed(self) -> None:
        if not self.closed:
            self.record.peer_closed_first = True
            self._on_change()

    def mark_closed(self) -> None:
        self.closed = True
        self.record.closed_at = time.monotonic()
        self._on_change()

    async def park(self, waiter: Awaitable[Any]) -> bool:
        """Wait for ``waiter`` while watching for the peer to go away.

        Returns True when ``waiter`` finished, False when the client closed or reset first (the
        record then says ``peer_closed_first``). Any bytes the client sends meanwhile are dropped:
        HTTP/1.1 clients do not pipeline while a response is outstanding.
        """
        wait_task: asyncio.Future[Any] = asyncio.ensure_future(waiter)
        eof_task = asyncio.ensure_future(self._until_eof())
        try:
            done, _ = await asyncio.wait({wait_task, eof_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (wait_task, eof_task):
                task.cancel()
            await asyncio.gather(wait_task, eof_task, return_exceptions=True)
        if wait_task in done and not wait_task.cancelled():
            return True
        self.peer_closed()
        return False

    async def _until_eof(self) -> None:
        with contextlib.suppress(ConnectionError):
            while await self.reader.read(65536):
                pass
