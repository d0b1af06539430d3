"""Incremental Server-Sent Events framer, safe for arbitrary chunk splits.

``SSEFramer.feed(chunk)`` accepts bytes exactly as they came off the socket — split anywhere,
including inside a line terminator or a multi-byte UTF-8 sequence — and returns the events
completed so far. It follows the WHATWG event-stream rules that matter for LLM streams:
``\\n``, ``\\r\\n`` and lone ``\\r`` end lines; ``data:`` with or without the space;
multi-line ``data`` joined with ``\\n``; comment lines (``:``) ignored; a UTF-8 BOM at the very
start skipped; an event is dispatched on a blank line. A line longer than ``max_line`` bytes
raises ``UpstreamProtocolError`` so a hostile upstream cannot grow our buffer without bound.

State: ``_buf`` holds the bytes of the current, incomplete line; ``_data``/``_event``/``_id``
the fields of the event being assembled; ``_cr`` remembers that the previous chunk ended in
``\\r`` so a ``\\n`` starting the next chunk is not read as an empty line.
"""

from __future__ import annotations

from dataclasses import dataclass

from unigate.errors import UpstreamProtocolError

DEFAULT_MAX_LINE = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SSEEvent:
    data: str
    event: str | None = None
    id: str | None = None


class SSEFramer:
    __slots__ = ("_buf", "_cr", "_data", "_event", "_id", "_max_line", "_started")

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self._buf = bytearray()
        self._cr = False
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._max_line = max_line
        self._started = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume ``chunk`` and return every event it completes, in order."""
        out: list[SSEEvent] = []
        if not chunk:
            return out
        if self._cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._cr = False
        buf = self._buf
        buf += chunk
        start = 0
        n = len(buf)
        while start < n:
            lf = buf.find(b"\n", start)
            cr = buf.find(b"\r", start)
            if lf < 0 and cr < 0:
                break
            if cr < 0 or (0 <= lf < cr):
                end, nxt = lf, lf + 1
            else:
                end = cr
                if cr + 1 < n:
                    nxt = cr + 2 if buf[cr + 1] == 0x0A else cr + 1
                else:
                    nxt = cr + 1
                    self._cr = True
            self._line(bytes(buf[start:end]), out)
            start = nxt
        del buf[:start]
        if len(buf) > self._max_line:
            raise UpstreamProtocolError(f"stream line longer than {self._max_line} bytes")
        return out

    def close(self) -> list[SSEEvent]:
        """End of input: a final event without its blank line is still dispatched."""
        out: list[SSEEvent] = []
        if self._buf:
            self._line(bytes(self._buf), out)
            self._buf.clear()
        self._line(b"", out)
        return out

    def _line(self, raw: bytes, out: list[SSEEvent]) -> None:
        if not self._started:
            self._started = True
            if raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
        if not raw:
            if self._data:
                out.append(SSEEvent("\n".join(self._data), self._event, self._id))
            self._data = []
            self._event = None
            return
        if raw[:1] == b":":
            return
        line = raw.decode("utf-8", errors="replace")
        name, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
