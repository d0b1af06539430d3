"""A client's multipart form as the relay holds it, and its re-emission for one upstream attempt.

The HTTP layer (http/multipart.py) parses the client's ``multipart/form-data`` body incrementally
as it arrives, keeping plain fields as bytes and each file in a spooled temporary file (memory up
to 1 MiB, then disk): that is the only copy of the upload. Each attempt re-emits the form from it
with ``encode_form``: a fresh boundary, every part in the client's order, ``model`` set to the
attempt's upstream name, files streamed from their spool in 64 KiB reads. The exact length is
computed up front, so the upstream gets a ``Content-Length`` (no chunked upload) and a failover
replays the same bytes without buffering a second copy.

Header values are written as browsers write them (WHATWG "multipart/form-data encoding"): in
``name`` and ``filename`` a ``"``, CR and LF become ``%22``, ``%0D``, ``%0A``, so nothing a client
sends can add a header or a part; a part's content type that is not a plain token/subtype is
replaced by ``application/octet-stream``.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

CHUNK = 64 * 1024
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*")


class Upload(Protocol):
    """A spooled file part (Starlette's ``UploadFile`` fits)."""

    async def read(self, size: int = -1) -> bytes: ...

    async def seek(self, offset: int) -> None: ...


@dataclass(frozen=True, slots=True)
class FormPart:
    """One part: a plain field (``value``) or a file (``upload`` of ``size`` bytes)."""

    name: str
    value: bytes = b""
    filename: str | None = None
    content_type: str | None = None
    upload: Upload | None = None
    size: int = 0


@dataclass(frozen=True, slots=True)
class Form:
    parts: tuple[FormPart, ...]

    def field(self, name: str) -> str | None:
        """The first plain field called ``name``, as text (None when absent)."""
        for part in self.parts:
            if part.name == name and part.upload is None:
                return part.value.decode("utf-8", "replace")
        return None

    def has_file(self, *names: str) -> bool:
        return any(part.upload is not None and part.name in names for part in self.parts)


def new_boundary() -> str:
    return "unigate-" + os.urandom(16).hex()


def _quote(text: str) -> str:
    return text.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _media_type(value: str | None) -> str:
    if value and _MEDIA_TYPE.fullmatch(value.strip()):
        return value.strip()
    return "application/octet-stream"


def _head(boundary: str, part: FormPart) -> bytes:
    disposition = f'form-data; name="{_quote(part.name)}"'
    lines = [f"--{boundary}"]
    if part.upload is not None:
        disposition += f'; filename="{_quote(part.filename or "file")}"'
        lines += [f"Content-Disposition: {disposition}", f"Content-Type: {_media_type(part.content_type)}"]
    else:
        lines.append(f"Content-Disposition: {disposition}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def encode_form(form: Form, boundary: str, model: str) -> tuple[int, AsyncIterator[bytes]]:
    """(exact byte length, body chunks) of ``form`` with every plain ``model`` field set to
    ``model``. The chunks rewind each file first, so the same form can be sent again."""
    plan: list[tuple[bytes, FormPart, bytes]] = []
    total = 0
    for part in form.parts:
        value = model.encode("utf-8") if part.name == "model" and part.upload is None else part.value
        head = _head(boundary, part)
        plan.append((head, part, value))
        total += len(head) + (part.size if part.upload is not None else len(value)) + 2
    tail = f"--{boundary}--\r\n".encode("ascii")
    total += len(tail)

    async def chunks() -> AsyncIterator[bytes]:
        for head, part, value in plan:
            upload = part.upload
            if upload is None:
                yield head + value + b"\r\n"
                continue
            yield head
            await upload.seek(0)
            while block := await upload.read(CHUNK):
                yield block
            yield b"\r\n"
        yield tail

    return total, chunks()
