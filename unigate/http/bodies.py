"""Request-body size limits of the non-chat endpoints, and the capped readers they use.

Each endpoint has its own limit, set by an environment variable (bytes; read on each request, so
tests and operators can change it without a rebuild of anything), with defaults sized to what the
OpenAI API itself accepts (docs/endpoints.md):

==============================  ===============================  =========
route                           variable                         default
==============================  ===============================  =========
/v1/embeddings                  UNIGATE_MAX_BODY_EMBEDDINGS      8 MiB
/v1/images/generations          UNIGATE_MAX_BODY_IMAGES          1 MiB
/v1/images/edits                UNIGATE_MAX_BODY_IMAGE_EDITS     64 MiB
/v1/audio/speech                UNIGATE_MAX_BODY_SPEECH          1 MiB
/v1/audio/transcriptions        UNIGATE_MAX_BODY_AUDIO           25 MiB
/v1/audio/translations          UNIGATE_MAX_BODY_AUDIO           25 MiB
/v1/moderations                 UNIGATE_MAX_BODY_MODERATIONS     8 MiB
==============================  ===============================  =========

(Chat keeps ``UNIGATE_MAX_BODY_BYTES``, http/responses.py.) A body over its limit is a 413 as soon
as that is known: at once when ``Content-Length`` declares more, otherwise when the byte that
crosses the limit arrives — the rest is never read, and nothing reaches an upstream.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request

from unigate.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

log = logging.getLogger("unigate")

MIB = 1024 * 1024
_JSON_TYPES = ("application/json", "application/x-www-form-urlencoded", "")


@dataclass(frozen=True, slots=True)
class BodyLimit:
    env: str
    default: int


LIMITS: dict[str, BodyLimit] = {
    "/v1/embeddings": BodyLimit("UNIGATE_MAX_BODY_EMBEDDINGS", 8 * MIB),
    "/v1/images/generations": BodyLimit("UNIGATE_MAX_BODY_IMAGES", 1 * MIB),
    "/v1/images/edits": BodyLimit("UNIGATE_MAX_BODY_IMAGE_EDITS", 64 * MIB),
    "/v1/audio/speech": BodyLimit("UNIGATE_MAX_BODY_SPEECH", 1 * MIB),
    "/v1/audio/transcriptions": BodyLimit("UNIGATE_MAX_BODY_AUDIO", 25 * MIB),
    "/v1/audio/translations": BodyLimit("UNIGATE_MAX_BODY_AUDIO", 25 * MIB),
    "/v1/moderations": BodyLimit("UNIGATE_MAX_BODY_MODERATIONS", 8 * MIB),
}
_warned: set[str] = set()


def limit_for(route: str, env: Mapping[str, str] = os.environ) -> int:
    """The body limit of ``route`` (a key of ``LIMITS``); an unreadable variable keeps the
    default, with one warning."""
    limit = LIMITS[route]
    raw = env.get(limit.env)
    if raw is None:
        return limit.default
    text = raw.strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    if limit.env not in _warned:
        _warned.add(limit.env)
        log.warning("%s=%r is not a positive number of bytes; using %d", limit.env, raw[:40], limit.default)
    return limit.default


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body larger than this endpoint's limit of {limit} bytes.", code="body_too_large")


async def capped_stream(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    """The request body as it arrives; raises 413 before reading past ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        if chunk:
            yield chunk


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """A JSON object body within ``limit`` (the content-type and parse rules of chat's
    ``read_json_object``: 415 for other types, 400 for empty, invalid or non-object JSON)."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype not in _JSON_TYPES and not ctype.endswith("+json"):
        raise UnsupportedMediaType(f"Content-Type '{ctype[:100]}' is not supported; send application/json.")
    raw = b"".join([chunk async for chunk in capped_stream(request, limit)])
    if not raw.strip():
        raise BadRequest("The request body is empty; send a JSON object.", code="invalid_json")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"The request body is not valid JSON: {str(exc)[:200]}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_json")
    return data
