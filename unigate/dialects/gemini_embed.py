"""OpenAI embeddings ⇄ the Gemini API's ``embedContent`` / ``batchEmbedContents``. Pure.

Docs: https://ai.google.dev/api/embeddings (wire-formats.md §3 "Embeddings").

Request (``encode_request``):

* a string ``input`` → ``POST models/{m}:embedContent`` with ``{"content": {"parts": [{"text"}]}}``;
* an array of strings → ``POST models/{m}:batchEmbedContents`` with one ``requests[]`` item per
  string, in order, each repeating ``"model": "models/{m}"`` (Google requires it);
* ``dimensions`` → ``outputDimensionality`` (on each item);
* ``encoding_format`` is the gateway's business: the vectors are encoded on the way back;
* ``user`` is dropped (no Gemini field; it does not change the vectors);
* token arrays cannot be expressed (Gemini embeds text) and any other non-null field has no
  Gemini counterpart: both are refused with ``UnsupportedFeature`` (a 400 naming the field), never
  silently dropped.

Response (``decode_response``): ``{"embedding": {"values"}}`` or ``{"embeddings": [{"values"}, …]}``
→ the vectors in input order. A count that does not match the input, or values that are not
numbers, is the upstream's fault (``UpstreamProtocolError``). The Gemini API returns no token usage
for embeddings (wire-formats.md §3); a ``usageMetadata.promptTokenCount`` is read when present,
otherwise the gateway estimates the tokens (the record says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from unigate.dialects import openai_embed
from unigate.errors import UnsupportedFeature, UpstreamProtocolError
from unigate.ir import Usage

_KNOWN = frozenset({"model", "input", "encoding_format", "dimensions", "user"})


@dataclass(frozen=True, slots=True)
class EmbedRequest:
    """The upstream request: ``batch`` picks ``batchEmbedContents`` over ``embedContent``;
    ``count`` is how many vectors the answer must hold."""

    batch: bool
    payload: dict[str, Any]
    count: int


def encode_request(body: Mapping[str, Any], upstream_model: str) -> EmbedRequest:
    """The Gemini request for an OpenAI embeddings body already checked by ``openai_embed.check_request``."""
    for key, value in body.items():
        if key not in _KNOWN and value is not None:
            raise UnsupportedFeature(f"'{key}' is not supported for Gemini embedding models", param=key)
    strings = openai_embed.texts(body)
    if strings is None:
        raise UnsupportedFeature("Gemini embedding models take text, not token arrays", param="input")
    extra: dict[str, Any] = {}
    dimensions = body.get("dimensions")
    if dimensions is not None:
        extra["outputDimensionality"] = dimensions
    if isinstance(body.get("input"), str):
        return EmbedRequest(False, {"content": _content(strings[0]), **extra}, 1)
    name = "models/" + upstream_model
    requests = [{"model": name, "content": _content(s), **extra} for s in strings]
    return EmbedRequest(True, {"requests": requests}, len(strings))


def decode_response(raw: bytes, request: EmbedRequest) -> tuple[list[list[float]], Usage | None]:
    """The vectors (input order) and the usage, when Google sent any."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError("Gemini returned an embeddings body that is not JSON") from None
    if not isinstance(data, dict):
        raise UpstreamProtocolError("Gemini returned an embeddings body that is not an object")
    items = data.get("embeddings") if request.batch else [data.get("embedding")]
    if not isinstance(items, list) or len(items) != request.count:
        raise UpstreamProtocolError(f"Gemini returned {_count(items)} embedding(s) for {request.count} input(s)")
    vectors = [_values(item) for item in items]
    return vectors, _usage(data.get("usageMetadata"))


def _content(text: str) -> dict[str, Any]:
    return {"parts": [{"text": text}]}


def _count(items: object) -> int:
    return len(items) if isinstance(items, list) else 0


def _values(item: object) -> list[float]:
    values = item.get("values") if isinstance(item, dict) else None
    if not isinstance(values, list) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise UpstreamProtocolError("Gemini returned an embedding without numeric 'values'")
    return [float(v) for v in values]


def _usage(value: object) -> Usage | None:
    if not isinstance(value, dict):
        return None
    prompt = value.get("promptTokenCount")
    if not isinstance(prompt, int) or isinstance(prompt, bool) or prompt < 0:
        return None
    return Usage(prompt_tokens=prompt)
