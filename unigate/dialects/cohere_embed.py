"""OpenAI embeddings ⇄ Cohere's v2 Embed API (``POST /v2/embed``). Pure.

Docs: https://docs.cohere.com/reference/embed (checked against the official SDK's
``cohere.ClientV2.embed`` and its ``EmbedByTypeResponse`` type).

Request (``encode_request``):

* a string or an array of strings ``input`` → ``texts`` (a string is one text), in order;
* ``input_type`` is required by Cohere's v3+ models and has no OpenAI field: it is
  ``search_document`` (embeddings of what you store) unless the client sends Cohere's own
  ``input_type`` (``search_document``, ``search_query``, ``classification``, ``clustering``) in the
  body, e.g. with the OpenAI SDK's ``extra_body``;
* ``dimensions`` → ``output_dimension`` (embed-v4 and newer; Cohere refuses it for older models
  and that 400 reaches the client);
* ``embedding_types`` is always ``["float"]``: the gateway encodes ``base64`` itself, because
  Cohere's ``base64`` type does not document its byte order;
* ``encoding_format`` is the gateway's business; ``user`` is dropped (no Cohere field);
* token arrays (Cohere embeds text) and any other non-null field are refused with
  ``UnsupportedFeature`` (a 400 naming the field), never silently dropped.

Response (``decode_response``): ``embeddings.float`` (one vector per text, in order) and the usage
from ``meta.billed_units.input_tokens``. A count that does not match the input, or values that
are not numbers, is the upstream's fault (``UpstreamProtocolError``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from unigate.dialects import openai_embed
from unigate.errors import UnsupportedFeature, UpstreamProtocolError
from unigate.ir import Usage

DEFAULT_INPUT_TYPE = "search_document"
INPUT_TYPES = ("search_document", "search_query", "classification", "clustering")
_KNOWN = frozenset({"model", "input", "encoding_format", "dimensions", "user", "input_type"})


@dataclass(frozen=True, slots=True)
class EmbedRequest:
    """The ``/v2/embed`` body and how many vectors the answer must hold."""

    payload: dict[str, Any]
    count: int


def encode_request(body: Mapping[str, Any], upstream_model: str) -> EmbedRequest:
    """The Cohere request for an OpenAI embeddings body already checked by ``openai_embed.check_request``."""
    for key, value in body.items():
        if key not in _KNOWN and value is not None:
            raise UnsupportedFeature(f"'{key}' is not supported for Cohere embedding models", param=key)
    texts = openai_embed.texts(body)
    if texts is None:
        raise UnsupportedFeature("Cohere embedding models take text, not token arrays", param="input")
    input_type = body.get("input_type")
    if input_type is None:
        input_type = DEFAULT_INPUT_TYPE
    elif input_type not in INPUT_TYPES:
        raise UnsupportedFeature(f"'input_type' must be one of {', '.join(INPUT_TYPES)}", param="input_type")
    payload: dict[str, Any] = {
        "model": upstream_model,
        "texts": texts,
        "input_type": input_type,
        "embedding_types": ["float"],
    }
    dimensions = body.get("dimensions")
    if dimensions is not None:
        payload["output_dimension"] = dimensions
    return EmbedRequest(payload, len(texts))


def decode_response(raw: bytes, request: EmbedRequest) -> tuple[list[list[float]], Usage | None]:
    """The vectors (input order) and the billed input tokens, when Cohere sent them."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError("Cohere returned an embed body that is not JSON") from None
    embeddings = data.get("embeddings") if isinstance(data, dict) else None
    floats = embeddings.get("float") if isinstance(embeddings, dict) else None
    if not isinstance(floats, list) or len(floats) != request.count:
        count = len(floats) if isinstance(floats, list) else 0
        raise UpstreamProtocolError(f"Cohere returned {count} float embedding(s) for {request.count} input(s)")
    vectors = [_values(item) for item in floats]
    assert isinstance(data, dict)
    return vectors, _usage(data.get("meta"))


def _values(item: object) -> list[float]:
    if not isinstance(item, list) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in item):
        raise UpstreamProtocolError("Cohere returned an embedding that is not a list of numbers")
    return [float(v) for v in item]


def _usage(meta: object) -> Usage | None:
    billed = meta.get("billed_units") if isinstance(meta, dict) else None
    tokens = billed.get("input_tokens") if isinstance(billed, dict) else None
    if isinstance(tokens, float) and tokens.is_integer():
        tokens = int(tokens)  # the SDK types billed units as floats
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
        return None
    return Usage(prompt_tokens=tokens)
