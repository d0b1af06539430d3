"""AWS's ``application/vnd.amazon.eventstream`` framing → ``SSEEvent``s for the Bedrock decoders.

Reference: wire-formats.md §6.3 (https://docs.aws.amazon.com/transcribe/latest/dg/streaming-setting-up.html
describes the frame; Bedrock's streams use it as botocore's ``bedrock-runtime`` model says). A frame
is ``total_length u32 | headers_length u32 | prelude_crc u32 | headers | payload | message_crc u32``;
frames do not align with socket reads. The byte work (prelude, both CRC32 checks, header decoding,
the 24 MiB payload bound) is botocore's ``EventStreamBuffer``; botocore is an optional dependency
(``unigate[bedrock]``), imported when a framer is made, so :func:`require_botocore` is what the
provider calls first to fail with a clear message.

Each frame becomes one :class:`BedrockEvent` (an ``SSEEvent``):

* ``:message-type: event`` → ``event`` = the ``:event-type`` header (``messageStart``,
  ``contentBlockDelta``, ``chunk`` …), ``data`` = the payload as text, ``kind`` = ``"event"``;
* ``:message-type: exception`` → ``event`` = the ``:exception-type`` header
  (``throttlingException`` …), ``data`` = the payload (``{"message": …}``), ``kind`` = ``"exception"``;
* ``:message-type: error`` → ``event`` = the ``:error-code`` header, ``data`` =
  ``{"message": <:error-message>}``, ``kind`` = ``"error"``.

The ``kind`` field is why a subclass exists: the decoders must tell an in-stream failure from an
event whose name they do not know (new event types are ignored, failures raise), and keep its place
in the order of the events around it.

:class:`InvokeFramer` (``invoke-with-response-stream``) also opens each ``chunk`` event: its payload
``{"bytes": <base64>, "p": <padding>}`` holds one Anthropic stream event (or another model's native
chunk), returned as ``SSEEvent(event=<its "type">, data=<its JSON text>)`` for the Anthropic decoder.

State of :class:`EventStreamFramer`: ``_buffer`` (botocore's, holding the bytes of the incomplete
frame) and ``_pending`` (bytes fed and not yet consumed by a whole frame; non-zero at ``close``
means the body ended inside a frame: truncation). A malformed frame raises
``UpstreamProtocolError``; the framer is then unusable, as the stream is.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from unigate.dialects.sse import SSEEvent
from unigate.errors import UpstreamProtocolError

EVENTSTREAM_MEDIA_TYPE = "application/vnd.amazon.eventstream"
MISSING_BOTOCORE = (
    "AWS Bedrock support needs botocore: install unigate with the 'bedrock' extra (pip install 'unigate[bedrock]')"
)

Kind = Literal["event", "exception", "error"]


@dataclass(frozen=True, slots=True)
class BedrockEvent(SSEEvent):
    """One event-stream message; ``kind`` is its ``:message-type`` (see the module docstring)."""

    kind: Kind = "event"


def require_botocore() -> None:
    """Raise ``RuntimeError`` naming the extra to install when botocore is missing."""
    try:
        import botocore.eventstream  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(MISSING_BOTOCORE) from exc


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


class EventStreamFramer:
    """``Framer`` for Converse streams: bytes in, one :class:`BedrockEvent` per frame out."""

    __slots__ = ("_buffer", "_pending")

    def __init__(self) -> None:
        try:
            from botocore.eventstream import EventStreamBuffer
        except ImportError as exc:
            raise RuntimeError(MISSING_BOTOCORE) from exc
        self._buffer: Any = EventStreamBuffer()
        self._pending = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Every frame ``chunk`` completes, in order."""
        if not chunk:
            return []
        self._buffer.add_data(chunk)
        self._pending += len(chunk)
        out: list[SSEEvent] = []
        while True:
            try:
                message = next(self._buffer)
            except StopIteration:
                return out
            except Exception as exc:  # botocore's ParserError family: bad CRC, bad lengths, bad headers
                raise UpstreamProtocolError(f"Bedrock event stream frame is malformed ({type(exc).__name__})") from None
            self._pending -= message.prelude.total_length
            out.extend(self._events(message.headers, message.payload))

    def close(self) -> list[SSEEvent]:
        """Nothing is buffered across frames; a partial frame at the end is a truncated stream."""
        if self._pending:
            raise UpstreamProtocolError("Bedrock event stream ended inside a frame")
        return []

    def _events(self, headers: dict[str, Any], payload: bytes) -> list[SSEEvent]:
        message_type = _text(headers.get(":message-type")) or "event"
        if message_type == "exception":
            name = _text(headers.get(":exception-type")) or "unknownException"
            return [BedrockEvent(data=payload.decode("utf-8", "replace"), event=name, kind="exception")]
        if message_type == "error":
            code = _text(headers.get(":error-code")) or "error"
            body = orjson.dumps({"message": _text(headers.get(":error-message"))}).decode()
            return [BedrockEvent(data=body, event=code, kind="error")]
        name = _text(headers.get(":event-type"))
        return [BedrockEvent(data=payload.decode("utf-8", "replace"), event=name or None)]


class InvokeFramer(EventStreamFramer):
    """``Framer`` for ``invoke-with-response-stream``: ``chunk`` events are opened (module docstring)."""

    __slots__ = ()

    def _events(self, headers: dict[str, Any], payload: bytes) -> list[SSEEvent]:
        events = super()._events(headers, payload)
        first = events[0]
        if not isinstance(first, BedrockEvent) or first.kind != "event" or first.event != "chunk":
            return events
        return [_open_chunk(payload)]


def _open_chunk(payload: bytes) -> SSEEvent:
    try:
        wrapper = orjson.loads(payload)
        inner = base64.b64decode(wrapper["bytes"], validate=True)
        text = inner.decode("utf-8")
        event = orjson.loads(inner)
    except (orjson.JSONDecodeError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise UpstreamProtocolError("Bedrock stream chunk is not base64-encoded JSON") from None
    name = event.get("type") if isinstance(event, dict) else None
    return SSEEvent(data=text, event=name if isinstance(name, str) else None)
