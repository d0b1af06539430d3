"""An ``application/vnd.amazon.eventstream`` encoder for the fake Bedrock runtime, written from the
documented frame layout (wire-formats.md §6.3; https://docs.aws.amazon.com/transcribe/latest/dg/streaming-setting-up.html):

    total_length u32 | headers_length u32 | prelude_crc u32 | headers | payload | message_crc u32

Integers are big-endian; ``prelude_crc`` is the CRC32 (zlib's, IEEE) of the first 8 bytes and
``message_crc`` the CRC32 of every byte before it. A header is ``name_len u8 | name | type u8 | value``
with the value types 0 true, 1 false, 2 byte, 3 int16, 4 int32, 5 int64, 6 bytes (u16 length),
7 string (u16 length, UTF-8), 8 timestamp (int64 ms), 9 uuid (16 bytes).

Deliberately independent of botocore (which the tests use to *decode* these frames), so the fake and
the code under test do not share a bug.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Sequence
from typing import Any

Header = tuple[str, Any]
"""``(name, value)``: ``str`` → string (7), ``bytes`` → bytes (6), ``bool`` → true/false (0/1),
``int`` → int32 (4), ``uuid.UUID`` → uuid (9). Other types: pass ``(name, (type_code, value))``."""

_INT_FORMATS = {2: ">b", 3: ">h", 4: ">i", 5: ">q", 8: ">q"}


def _header(name: str, value: Any) -> bytes:
    raw_name = name.encode("ascii")
    if not 0 < len(raw_name) < 256:
        raise ValueError(f"header name {name!r} must be 1-255 bytes")
    out = struct.pack(">B", len(raw_name)) + raw_name
    if isinstance(value, tuple):
        code, inner = value
    elif isinstance(value, bool):
        code, inner = (0 if value else 1), None
    elif isinstance(value, str):
        code, inner = 7, value
    elif isinstance(value, bytes):
        code, inner = 6, value
    elif isinstance(value, int):
        code, inner = 4, value
    elif isinstance(value, uuid.UUID):
        code, inner = 9, value
    else:
        raise TypeError(f"no event-stream header type for {type(value).__name__}")
    out += struct.pack(">B", code)
    if code in (0, 1):
        return out
    if code in _INT_FORMATS:
        return out + struct.pack(_INT_FORMATS[code], inner)
    if code in (6, 7):
        data = inner.encode("utf-8") if code == 7 else bytes(inner)
        return out + struct.pack(">H", len(data)) + data
    if code == 9:
        return out + inner.bytes
    raise ValueError(f"unknown header type {code}")


def frame(headers: Sequence[Header], payload: bytes) -> bytes:
    """One complete message: prelude, prelude CRC, headers (in the given order), payload, message CRC."""
    encoded = b"".join(_header(name, value) for name, value in headers)
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event_frame(event_type: str, payload: bytes) -> bytes:
    """An ``event`` message as Bedrock sends it (header order as in wire-formats.md §6.3's example)."""
    return frame(
        [(":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")], payload
    )


def exception_frame(exception_type: str, payload: bytes) -> bytes:
    """An in-stream ``exception`` message (``{"message": …}`` payload)."""
    return frame(
        [(":exception-type", exception_type), (":content-type", "application/json"), (":message-type", "exception")],
        payload,
    )


def error_frame(code: str, message: str) -> bytes:
    """An ``error`` message: the code and message travel in headers, the payload is empty."""
    return frame([(":error-code", code), (":error-message", message), (":message-type", "error")], b"")
