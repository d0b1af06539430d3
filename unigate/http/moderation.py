"""The moderation gate: a key with ``ENABLE_MODERATION: true`` has its users' text checked by a
moderation model before the request is routed.

Contract (docs/endpoints.md "Moderation gate"):

- **What is checked.** Chat: the text of every ``user`` message (string content, and the ``text``
  of text parts), one moderation input per message. Image generations and edits: ``prompt``.
  Speech: ``input``. Nothing else (embeddings and transcriptions are not gated). A request with no
  such text is not checked.
- **How.** One ``POST /v1/moderations`` request for ``preferences.moderation_model`` (default
  ``omni-moderation-latest``) through the normal routing **with the caller's key**: the key must be
  allowed that model, and the gateway's retries, cooldowns and timeouts apply. The check is not a
  request of its own in the statistics: its latency is the request record's ``moderation_ms``.
- **Flagged** (any result ``flagged: true``): 400 ``content_flagged`` naming the flagged
  categories; nothing is sent to the requested model.
- **The gate's own failures** (the key may not use the moderation model, every attempt failed, an
  answer that is not a moderation result): with ``preferences.moderation_fail_open: true`` (the
  default, uni-api's behaviour) the failure is logged and the request proceeds; with ``false`` the
  request is refused with 503 ``moderation_unavailable``.
- Keys without the flag never reach this module: the hot path pays one attribute check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import orjson

from unigate.config.compile import ClientKey
from unigate.errors import BadRequest, UnigateError, UpstreamProtocolError
from unigate.http.recording import Pending
from unigate.http.state import Gateway
from unigate.relay_media import MODERATIONS, MediaAnswer, MediaCall, plan_media, run_media

log = logging.getLogger("unigate.moderation")


class ModerationFlagged(BadRequest):
    """The moderation model flagged the request's text (400, ``content_flagged``)."""


class ModerationUnavailable(UnigateError):
    """The check failed and ``moderation_fail_open`` is false (503, ``moderation_unavailable``)."""

    status = 503
    error_type = "service_unavailable"


def chat_texts(body: Mapping[str, Any]) -> list[str]:
    """The text of every ``user`` message of a chat body (one string per message)."""
    out: list[str] = []
    for message in body.get("messages") or ():
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            text = content
        elif isinstance(content, list):
            text = "\n".join(
                p["text"]
                for p in content
                if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            )
        else:
            continue
        if text.strip():
            out.append(text)
    return out


def field_texts(*values: object) -> list[str]:
    """The non-blank strings among ``values`` (an image ``prompt``, a speech ``input``)."""
    return [v for v in values if isinstance(v, str) and v.strip()]


def flagged_categories(answer: MediaAnswer) -> list[str] | None:
    """The flagged categories (sorted), or None when nothing was flagged. Raises
    ``UpstreamProtocolError`` when the answer is not a moderation result."""
    try:
        data = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError("the moderation answer is not JSON") from None
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list) or not results or not all(isinstance(r, dict) for r in results):
        raise UpstreamProtocolError("the moderation answer has no results")
    if not any(r.get("flagged") is True for r in results):
        return None
    names: set[str] = set()
    for result in results:
        categories = result.get("categories")
        if result.get("flagged") is True and isinstance(categories, dict):
            names.update(str(name) for name, hit in categories.items() if hit is True)
    return sorted(names)


async def screen(gateway: Gateway, key: ClientKey, texts: list[str], pending: Pending, param: str) -> None:
    """Check ``texts`` for ``key``; raise ``ModerationFlagged`` / ``ModerationUnavailable`` or
    return to let the request proceed. Sets ``pending.moderation_ms``."""
    if not texts:
        return
    runtime = gateway.runtime
    model = runtime.moderation_model
    started = time.perf_counter()
    try:
        call = MediaCall(MODERATIONS, key, model, pending.request_id, body={"model": model, "input": texts})
        try:
            result = await run_media(gateway.relay, call, await plan_media(gateway.relay, call))
            if not isinstance(result, MediaAnswer):
                await result.chunks.aclose()
                raise UpstreamProtocolError("the moderation answer is not JSON")
            categories = flagged_categories(result)
        except UnigateError as err:
            if runtime.moderation_fail_open:
                log.warning(
                    "moderation check failed for request %s (key %s): %s; letting it through "
                    "(preferences.moderation_fail_open)",
                    pending.request_id,
                    key.label,
                    err.message,
                )
                return
            raise ModerationUnavailable(
                f"The moderation check failed, and this gateway refuses unchecked requests: {err.message}",
                code="moderation_unavailable",
            ) from None
    finally:
        pending.moderation_ms = round((time.perf_counter() - started) * 1000, 3)
    if categories is not None:
        shown = ", ".join(categories) if categories else "unspecified"
        raise ModerationFlagged(
            f"The request was flagged by moderation (categories: {shown}); it was not sent to the model.",
            code="content_flagged",
            param=param,
        )
