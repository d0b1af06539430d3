"""The fake Gemini API's embedding methods (wire-formats.md §3; https://ai.google.dev/api/embeddings).

``POST models/{m}:embedContent`` takes ``{"content": {"parts": [{"text"}]}, "outputDimensionality"?}``
and answers ``{"embedding": {"values"}}``; ``POST models/{m}:batchEmbedContents`` takes
``{"requests": [{"model": "models/{m}", "content", …}]}`` (each item must name the URL's model)
and answers ``{"embeddings": [{"values"}, …]}``. A body Google would refuse (no text, an unknown
field, a wrong ``model``) is a 400 ``INVALID_ARGUMENT``. Vectors are the media fake's
(``media_wire.vector``), so tests can compare the two providers' answers. Scripted behaviours
apply: ``GEcho`` (the default) answers, anything else (``GFail``, ``Hang``, ``Refuse`` …) runs as for
``generateContent``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.fakes.gemini_behaviours import GEcho
from tests.fakes.gemini_runners import GeminiExchange, run
from tests.fakes.media_wire import vector

EMBED_METHODS = ("embedContent", "batchEmbedContents")
DEFAULT_DIMENSIONS = 4
_ITEM_FIELDS = {"model", "content", "taskType", "title", "outputDimensionality"}


def _text(item: Any) -> str | None:
    """The text of one embed request item, or None when it is not a valid one."""
    if not isinstance(item, dict) or set(item) - _ITEM_FIELDS:
        return None
    content = item.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts:
        return None
    texts = [p.get("text") for p in parts if isinstance(p, dict)]
    if not texts or not all(isinstance(t, str) and t for t in texts):
        return None
    return "".join(str(t) for t in texts)


def _values(item: dict[str, Any], text: str) -> dict[str, Any]:
    dims = item.get("outputDimensionality") or DEFAULT_DIMENSIONS
    return {"values": vector(text, int(dims))}


async def serve_embed(
    ex: GeminiExchange, method: str, body: Any, model: str, next_behaviour: Callable[[str], object]
) -> bool:
    """Answer ``:embedContent`` / ``:batchEmbedContents`` for ``model`` (route and key already checked)."""
    if method == "embedContent":
        items = [body]
    else:
        requests = body.get("requests") if isinstance(body, dict) and set(body) == {"requests"} else None
        if not isinstance(requests, list) or not requests:
            return await ex.error(400, "* BatchEmbedContentsRequest.requests: must not be empty")
        items = requests
        for i, item in enumerate(items):
            if not isinstance(item, dict) or item.get("model") != f"models/{model}":
                return await ex.error(400, f"* BatchEmbedContentsRequest.requests[{i}].model: must be models/{model}")
    texts = [_text(item) for item in items]
    if any(t is None for t in texts):
        return await ex.error(400, "* EmbedContentRequest.content: contains an empty Part or an unknown field")
    ex.body, ex.model = body, model
    behaviour = next_behaviour(model)
    if not isinstance(behaviour, GEcho):
        return await run(behaviour, ex)
    vectors = [_values(item, str(text)) for item, text in zip(items, texts, strict=True)]
    if method == "embedContent":
        return await ex.respond_json(200, {"embedding": vectors[0]})
    return await ex.respond_json(200, {"embeddings": vectors})
