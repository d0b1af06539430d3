"""The fake Cohere upstream's ``POST /v2/embed`` (https://docs.cohere.com/reference/embed): the
request check and the ``EmbedByTypeResponse`` answer. Pure.

Vectors are ``media_wire.vector`` (exact in float32), so tests compare them with ``==`` whatever
encoding the gateway hands back; ``output_dimension`` sets their length (4 when absent);
``meta.billed_units.input_tokens`` is the number of words.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.fakes.media_wire import vector, words

EMBED_PATH = "/v2/embed"
INPUT_TYPES = ("search_document", "search_query", "classification", "clustering", "image")
EMBEDDING_TYPES = ("float", "int8", "uint8", "binary", "ubinary", "base64")
MAX_TEXTS = 96


def check_embed_body(body: Any) -> str | None:
    """Why Cohere would refuse ``body`` with a 400, or None."""
    if not isinstance(body, dict):
        return "invalid request: body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "invalid request: model must be a non-empty string"
    if body.get("input_type") not in INPUT_TYPES:
        return f"invalid request: input_type must be one of {', '.join(INPUT_TYPES)}"
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return "invalid request: texts must be a non-empty list of strings"
    if len(texts) > MAX_TEXTS:
        return f"invalid request: texts must contain at most {MAX_TEXTS} items"
    types = body.get("embedding_types", ["float"])
    if not isinstance(types, list) or not all(t in EMBEDDING_TYPES for t in types):
        return f"invalid request: embedding_types must be a list of {', '.join(EMBEDDING_TYPES)}"
    dims = body.get("output_dimension")
    if dims is not None and (not isinstance(dims, int) or dims < 1):
        return "invalid request: output_dimension must be a positive integer"
    unknown = set(body) - {"model", "input_type", "texts", "embedding_types", "output_dimension", "truncate"}
    if unknown:
        return f"invalid request: unknown field(s) {', '.join(sorted(unknown))}"
    return None


def embed_json(body: dict[str, Any]) -> dict[str, Any]:
    """The answer to a checked body: float embeddings (only the types asked for that are floats)."""
    texts: list[str] = body["texts"]
    dims = int(body.get("output_dimension") or 4)
    embeddings: dict[str, Any] = {}
    if "float" in body.get("embedding_types", ["float"]):
        embeddings["float"] = [vector(t, dims) for t in texts]
    return {
        "id": str(uuid.uuid4()),
        "embeddings": embeddings,
        "texts": texts,
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": sum(words(t) for t in texts)}},
        "response_type": "embeddings_by_type",
    }
