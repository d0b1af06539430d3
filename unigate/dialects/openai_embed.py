"""OpenAI embeddings on the wire (wire-formats.md §9; https://platform.openai.com/docs/api-reference/embeddings).

Pure. Owns three things every embeddings route shares, whatever the upstream:

* ``check_request``: the light validation the gateway does before routing — ``input`` is a
  non-empty string, a non-empty array of strings, a token array (integers) or an array of token
  arrays; ``encoding_format`` is ``float`` or ``base64``; ``dimensions`` a positive integer.
  Anything else is a clear 400 naming the field; the upstream never sees it.
* the ``base64`` encoding: the vector's little-endian float32 bytes, base64-encoded — what the
  official Python SDK asks for when the caller chose nothing, and decodes itself.
* ``normalize_response``: an OpenAI-compatible upstream's answer made to honour the client's
  ``encoding_format`` whatever the upstream did (some ignore the field and always send arrays;
  those are packed here; a base64 string is unpacked when the client asked for floats), with
  ``model`` set to the name the client used.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from unigate.errors import BadRequest, UpstreamProtocolError
from unigate.ir import Usage

ENCODINGS = ("float", "base64")


def check_request(body: Mapping[str, Any]) -> None:
    """Raise ``BadRequest`` unless ``input``, ``encoding_format`` and ``dimensions`` are valid."""
    value = body.get("input")
    if isinstance(value, str):
        if not value:
            raise BadRequest("'input' must not be an empty string.", param="input")
    elif isinstance(value, list) and value:
        if not (_all_str(value) or _token_array(value) or all(_token_array(v) for v in value)):
            raise BadRequest(
                "'input' must be a string, an array of strings, an array of tokens or an array of token arrays.",
                param="input",
            )
        if any(isinstance(v, str | list) and not v for v in value):
            raise BadRequest("'input' must not contain empty strings or empty token arrays.", param="input")
    else:
        raise BadRequest("'input' is required: a non-empty string or array.", param="input")
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ENCODINGS:
        raise BadRequest("'encoding_format' must be 'float' or 'base64'.", param="encoding_format")
    dimensions = body.get("dimensions")
    if dimensions is not None and (not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1):
        raise BadRequest("'dimensions' must be a positive integer.", param="dimensions")


def texts(body: Mapping[str, Any]) -> list[str] | None:
    """The input as a list of strings, or None when it is made of token arrays."""
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and _all_str(value):
        return list(value)
    return None


def encoding_of(body: Mapping[str, Any]) -> str:
    """The encoding the client asked for (OpenAI's default is ``float``)."""
    encoding = body.get("encoding_format")
    return encoding if isinstance(encoding, str) and encoding in ENCODINGS else "float"


def to_base64(values: Sequence[float]) -> str:
    """A vector as OpenAI's ``base64`` embedding: little-endian float32 bytes, base64-encoded."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


def from_base64(text: str) -> list[float]:
    """Inverse of ``to_base64``; raises ``ValueError`` on a string that is not one."""
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None
    if len(raw) % 4:
        raise ValueError("base64 embedding is not a whole number of float32 values")
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def encode_vector(values: Sequence[float], encoding: str) -> list[float] | str:
    return to_base64(values) if encoding == "base64" else [float(v) for v in values]


def response(vectors: Sequence[Sequence[float]], model: str, encoding: str, usage: Usage | None) -> dict[str, Any]:
    """OpenAI's ``CreateEmbeddingResponse`` for vectors in input order (usage 0 when unknown)."""
    prompt = usage.prompt_tokens if usage is not None else 0
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode_vector(v, encoding)} for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }


def decode_usage(value: object) -> Usage | None:
    """Embeddings ``usage`` (``prompt_tokens``, ``total_tokens``) → ``Usage``; None when absent."""
    if not isinstance(value, Mapping):
        return None
    prompt = value.get("prompt_tokens")
    if not isinstance(prompt, int) or isinstance(prompt, bool) or prompt < 0:
        return None
    return Usage(prompt_tokens=prompt)


def normalize_response(data: dict[str, Any], model: str | None, encoding: str) -> Usage | None:
    """Rewrite an OpenAI-compatible answer in place (``model`` unless None, each ``embedding`` in
    ``encoding``); return its usage. A body without a ``data`` list of embeddings is the
    upstream's fault (``UpstreamProtocolError``: the relay tries the next channel)."""
    items = data.get("data")
    if not isinstance(items, list):
        raise UpstreamProtocolError("upstream embeddings answer has no 'data' list")
    for item in items:
        vector = item.get("embedding") if isinstance(item, dict) else None
        if isinstance(vector, list):
            if encoding == "base64":
                item["embedding"] = to_base64(_floats(vector))
        elif isinstance(vector, str):
            if encoding == "float":
                try:
                    item["embedding"] = from_base64(vector)
                except ValueError:
                    raise UpstreamProtocolError("upstream sent an embedding that is not valid base64") from None
        else:
            raise UpstreamProtocolError("upstream embeddings answer has an item without an embedding")
    if model is not None:
        data["model"] = model
    return decode_usage(data.get("usage"))


def _floats(vector: list[Any]) -> list[float]:
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in vector):
        raise UpstreamProtocolError("upstream sent an embedding with non-numeric values")
    return [float(v) for v in vector]


def _all_str(value: list[Any]) -> bool:
    return all(isinstance(v, str) for v in value)


def _token_array(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value)
    )
