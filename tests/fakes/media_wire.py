"""Pure wire helpers of the fake media upstream (wire-formats.md §9): answer bodies for
embeddings, images, speech, transcriptions and moderations, and a strict multipart parser.

Vectors are exact in float32 (multiples of 1/8), so a value survives the ``base64`` encoding
unchanged and tests can compare with ``==``.
"""

from __future__ import annotations

import base64
import re
import struct
from dataclasses import dataclass
from typing import Any

JsonObj = dict[str, Any]

CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
AUDIO_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


def vector(item: Any, dims: int) -> list[float]:
    """A deterministic vector for one input item: ``(len(str(item)) + k) / 8``, alternating sign."""
    size = len(item) if isinstance(item, str | list) else 1
    return [(size + k) / 8 * (1 if k % 2 == 0 else -1) for k in range(dims)]


def to_base64(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


def embedding_items(value: Any) -> list[Any]:
    """The items of an embeddings ``input``: a string or token array is one item."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(t, int) for t in value):
        return [value]
    if isinstance(value, list):
        return list(value)
    raise ValueError("'input' must be a string or an array")


def words(item: Any) -> int:
    return len(item.split()) if isinstance(item, str) else len(item) if isinstance(item, list) else 1


def embeddings_json(model: str, items: list[Any], dims: int, encoding: str) -> JsonObj:
    data = []
    for i, item in enumerate(items):
        values = vector(item, dims)
        data.append(
            {"object": "embedding", "index": i, "embedding": to_base64(values) if encoding == "base64" else values}
        )
    tokens = sum(words(item) for item in items)
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def images_json(prompt: str, n: int, tag: str = "image") -> JsonObj:
    picture = base64.b64encode(f"{tag}:{prompt}".encode()).decode("ascii")
    text = words(prompt)
    return {
        "created": 1767225600,
        "data": [{"b64_json": picture} for _ in range(n)],
        "usage": {
            "input_tokens": text,
            "input_tokens_details": {"image_tokens": 0, "text_tokens": text},
            "output_tokens": 100 * n,
            "total_tokens": text + 100 * n,
        },
    }


def speech_bytes(text: str) -> bytes:
    """The fake's "audio": an ID3 tag then the input text repeated to a few KiB."""
    return b"ID3\x04\x00" + (text.encode("utf-8") + b"|") * 64


def moderation_json(inputs: list[str], flagged: tuple[str, ...] = ()) -> JsonObj:
    results = []
    for _ in inputs:
        results.append(
            {
                "flagged": bool(flagged),
                "categories": {c: c in flagged for c in CATEGORIES},
                "category_scores": {c: 0.9 if c in flagged else 0.001 for c in CATEGORIES},
                "category_applied_input_types": {c: ["text"] for c in CATEGORIES},
            }
        )
    return {"id": "modr-fake", "model": "omni-moderation-2024-09-26", "results": results}


@dataclass(frozen=True)
class Part:
    """One multipart part: ``name``, ``filename`` (None for a plain field), ``content_type``, ``data``."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")


_PARAM = re.compile(r';\s*([^=;\s]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))')


def _params(value: str) -> dict[str, str]:
    """The ``; key=value`` parameters of a header value (quoted values may hold ``;``)."""
    out: dict[str, str] = {}
    for match in _PARAM.finditer(value):
        quoted, plain = match[2], match[3]
        out[match[1].lower()] = quoted if quoted is not None else plain.strip()
    return out


def parse_multipart(content_type: str, body: bytes) -> list[Part]:
    """Parse a ``multipart/form-data`` body strictly (no preamble, CRLF everywhere, a closing
    delimiter); raises ``ValueError`` on anything else."""
    if content_type.split(";", 1)[0].strip().lower() != "multipart/form-data":
        raise ValueError(f"not multipart/form-data: {content_type!r}")
    boundary = _params(content_type).get("boundary")
    if not boundary:
        raise ValueError("no boundary")
    delim = b"--" + boundary.encode("latin-1")
    if not body.startswith(delim):
        raise ValueError("body does not start with the boundary")
    rest = body[len(delim) :]
    parts: list[Part] = []
    while not rest.startswith(b"--"):
        if not rest.startswith(b"\r\n"):
            raise ValueError("boundary not followed by CRLF")
        end = rest.find(b"\r\n" + delim, 2)
        if end < 0:
            raise ValueError("no closing delimiter")
        head, sep, data = rest[2:end].partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("part without a header block")
        headers: dict[str, str] = {}
        for line in head.decode("utf-8").split("\r\n"):
            key, colon, value = line.partition(":")
            if not colon:
                raise ValueError(f"bad part header {line!r}")
            headers[key.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        params = _params(disposition)
        if not disposition.lower().startswith("form-data") or "name" not in params:
            raise ValueError(f"bad content-disposition {disposition!r}")
        parts.append(Part(params["name"], params.get("filename"), headers.get("content-type"), data))
        rest = rest[end + 2 + len(delim) :]
    if rest not in (b"--", b"--\r\n"):
        raise ValueError("data after the closing delimiter")
    return parts


def form_field(parts: list[Part], name: str) -> str | None:
    for part in parts:
        if part.name == name and part.filename is None:
            return part.text
    return None


def files(parts: list[Part], *names: str) -> list[Part]:
    return [p for p in parts if p.filename is not None and p.name in names]
