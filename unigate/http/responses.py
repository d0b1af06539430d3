"""Rendering of JSON bodies and errors, and the body-reading rules shared by every endpoint.

Every error leaves as OpenAI's shape ``{"error": {"message", "type", "param", "code"}}`` with
the status its class names (errors.py). Exceptions that are not ours never leak a traceback:
they are logged and answered with a fixed 500 body.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from unigate.errors import BadRequest, PayloadTooLarge, UnigateError, UnsupportedMediaType

MAX_BODY_BYTES = int(os.environ.get("UNIGATE_MAX_BODY_BYTES", str(32 * 1024 * 1024)))
_JSON_TYPES = ("application/json", "application/x-www-form-urlencoded", "")


class JSONBytes(Response):
    """A response whose body is already-serialised JSON bytes."""

    media_type = "application/json"


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONBytes(orjson.dumps(data), status_code=status, headers=headers)


def error_response(err: UnigateError, headers: dict[str, str] | None = None) -> Response:
    merged = dict(err.headers())
    if headers:
        merged.update(headers)
    return JSONBytes(orjson.dumps(err.to_openai()), status_code=err.http_status(), headers=merged)


def internal_error_response() -> Response:
    body = {
        "error": {
            "message": "Internal error in the gateway.",
            "type": "server_error",
            "param": None,
            "code": "internal_error",
        }
    }
    return JSONBytes(orjson.dumps(body), status_code=500)


async def read_json_object(request: Request) -> dict[str, Any]:
    """Read and parse a JSON object body with the size limit.

    Accepted content types: ``application/json``, none, and ``application/x-www-form-urlencoded``
    (what ``curl -d`` sends by default) when the body is JSON. Anything else is a 415.
    orjson rejects NaN/Infinity, invalid UTF-8, integers past 64 bits and nesting deeper than
    1024 levels — each becomes a 400 here, never a 500.
    """
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype not in _JSON_TYPES and not ctype.endswith("+json"):
        raise UnsupportedMediaType(f"Content-Type '{ctype[:100]}' is not supported; send application/json.")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"Request body larger than {MAX_BODY_BYTES} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"Request body larger than {MAX_BODY_BYTES} bytes.")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise BadRequest("The request body is empty; send a JSON object.", code="invalid_json")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"The request body is not valid JSON: {str(exc)[:200]}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_json")
    return data
