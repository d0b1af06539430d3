"""Classify an OpenAI-compatible upstream's error answer into the error tree (wire-formats.md §1).

``decode_error(status, headers, body)`` starts from the status (``errors.upstream_error_for_status``)
and refines by the body's ``error.code`` / ``error.type`` / message:

==========================================  ===============================================
``context_length_exceeded`` (or a 4xx       ``ContextLengthExceeded`` (the client's request)
message about the context window)
``content_filter``, ``content_policy_…``,   ``ContentFiltered``
``invalid_prompt``
``insufficient_quota`` and billing codes    ``UpstreamAuthError``: the key is out of credit. Not a
                                            rate limit — it will not clear in seconds, so the key
                                            is cooled like a refused key and the client sees 502.
``invalid_api_key``                         ``UpstreamAuthError`` whatever the status
``rate_limit_exceeded``                     ``UpstreamRateLimited`` whatever the status
Cloudflare ``3036`` (daily allocation used)  ``UpstreamAuthError``: the key is spent until tomorrow
==========================================  ===============================================

A content-filter refusal (Azure: 400 ``code: "content_filter"`` with ``innererror``) is the
client's problem: ``ContentFiltered`` (400, never retried), its message naming the categories
Azure's ``innererror.content_filter_result`` marks as filtered. (A filtered *answer* is a 200 with
``finish_reason: "content_filter"`` — a successful answer, passed through as OpenAI defines it.)

Besides OpenAI's ``{"error": …}``, Cloudflare's envelope ``{"success": false, "errors": [{"code",
"message"}]}`` is read (wire-formats.md §8; https://developers.cloudflare.com/workers-ai/platform/errors/).

A 2xx ``status`` means an error object inside a successful answer (a JSON body or an in-band
stream event): it is classified by a numeric ``error.code``/``status`` when the provider gave
one, else as ``UpstreamUnavailable``.

``retry_after`` comes from ``retry-after-ms``, else ``retry-after`` (seconds, or an HTTP-date
measured against the response's own ``Date`` header — dialects read no clock — and ignored
without one), else the "try again in 1.824s" hint of OpenAI's rate-limit message. Negative,
non-finite and unparsable values are ignored. The message is ``error.message`` (or the body
text truncated to ``MAX_TEXT`` characters; an HTML page is summarised by its title, never
echoed) and always passes through ``errors.redact``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from unigate.errors import (
    ContentFiltered,
    ContextLengthExceeded,
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamUnavailable,
    redact,
    upstream_error_for_status,
)

MAX_TEXT = 500
MAX_MESSAGE = 4000

_CONTEXT_CODES = frozenset({"context_length_exceeded", "string_above_max_length", "context_window_exceeded"})
_FILTER_CODES = frozenset(
    {"content_filter", "content_policy_violation", "invalid_prompt", "content_filtered", "safety"}
)
_KEY_CODES = frozenset(
    {"insufficient_quota", "billing_hard_limit_reached", "billing_not_active", "access_terminated",
     "account_deactivated", "invalid_api_key"}
)  # fmt: skip
_RATE_CODES = frozenset({"rate_limit_exceeded", "rate_limit_error", "too_many_requests"})
# Cloudflare Workers AI error codes (numbers, only inside its envelope) that the status alone
# misclassifies: 3036 is a 429 that will not clear today, so the key is cooled, not retried.
_CLOUDFLARE_KEY_CODES = frozenset({"3036"})
_CONTEXT_TEXT = re.compile(
    r"context length|context window|maximum context|prompt is too long|reduce the length", re.IGNORECASE
)
_TRY_AGAIN = re.compile(r"try again in (\d+(?:\.\d+)?)\s*(ms|s)\b", re.IGNORECASE)
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def decode_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    """Classify a provider's error answer (see the module docstring); never raises."""
    lower = {str(key).lower(): str(value) for key, value in headers.items()}
    payload = _json(body)
    info = _error_info(payload) if payload is not None else None
    if info is not None:
        message = info.get("message")
        message = message if isinstance(message, str) and message else _text_message(status, lower, body)
    else:
        message = _text_message(status, lower, body)
    message = redact(message[:MAX_MESSAGE])
    code = _code(info)
    etype = info.get("type") if info is not None and isinstance(info.get("type"), str) else None
    param = info.get("param") if info is not None and isinstance(info.get("param"), str) else None
    retry_after = _retry_after(lower, message)
    effective = status if status >= 300 else _status_hint(info)
    err = (
        upstream_error_for_status(effective, message, retry_after=retry_after, code=code)
        if effective
        else UpstreamUnavailable(message, upstream_status=status, retry_after=retry_after, code=code)
    )
    refined = _refine(effective, code, etype, message)
    if info is not None and info.get("envelope") and code in _CLOUDFLARE_KEY_CODES:
        refined = UpstreamAuthError
    if refined is ContentFiltered and info is not None:
        message = _filter_message(message, info)
    if refined is not None and not isinstance(err, refined):
        err = refined(message, upstream_status=err.upstream_status, retry_after=retry_after, code=code)
    err.message = message
    err.param = param[:200] if param else None
    return err


def error_from_payload(payload: Mapping[str, Any]) -> UpstreamError:
    """An ``{"error": …}`` object found inside a 2xx answer or stream, classified."""
    return decode_error(200, {}, orjson.dumps(payload))


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _error_info(payload: Any) -> dict[str, Any] | None:
    """The error object: ``{"error": {...}}``, ``{"error": "text"}``, a bare ``{"message"}`` /
    FastAPI ``{"detail"}``, or Google's compatibility layer's ``[{"error": {...}}]``."""
    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
        payload = payload[0]
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if isinstance(error, dict):
        return error
    if isinstance(error, str):
        return {"message": error}
    errors = payload.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):  # Cloudflare's envelope
        first = errors[0]
        return {"message": first.get("message"), "code": first.get("code"), "envelope": True}
    for key in ("message", "detail"):
        if isinstance(payload.get(key), str):
            return {"message": payload[key], "code": payload.get("code"), "type": payload.get("type")}
    return None


def _code(info: Mapping[str, Any] | None) -> str | None:
    code = info.get("code") if info is not None else None
    if isinstance(code, bool) or not isinstance(code, str | int):
        return None
    return str(code)[:100] or None


def _status_hint(info: Mapping[str, Any] | None) -> int:
    """A numeric HTTP status inside an error object (``code: 429`` or ``status: 503``), else 0."""
    if info is None:
        return 0
    for key in ("code", "status"):
        value = info.get(key)
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599:
            return value
    return 0


def _refine(status: int, code: str | None, etype: str | None, message: str) -> type[UpstreamError] | None:
    marks = {mark.lower() for mark in (code, etype) if mark}
    if marks & _CONTEXT_CODES:
        return ContextLengthExceeded
    if marks & _FILTER_CODES:
        return ContentFiltered
    if marks & _KEY_CODES:
        return UpstreamAuthError
    if marks & _RATE_CODES:
        return UpstreamRateLimited
    if status in (400, 413, 422) and _CONTEXT_TEXT.search(message):
        return ContextLengthExceeded
    return None


def _filter_message(message: str, info: Mapping[str, Any]) -> str:
    """Azure's filter refusal, naming the categories its ``innererror`` marks as filtered."""
    inner = info.get("innererror")
    result = inner.get("content_filter_result") if isinstance(inner, dict) else None
    if not isinstance(result, dict):
        return message
    hits = sorted(k for k, v in result.items() if isinstance(v, dict) and v.get("filtered") is True)
    if not hits:
        return message
    return f"{message} (content filter: {', '.join(hits)} filtered; not retried)"


def _text_message(status: int, headers: Mapping[str, str], body: bytes) -> str:
    text = body.strip()
    if not text:
        return f"upstream answered HTTP {status} with an empty body"
    if "html" in headers.get("content-type", "") or text[:1] == b"<":
        match = _TITLE.search(text)
        title = " ".join(match.group(1).decode("utf-8", "replace").split())[:100] if match else ""
        return f"upstream answered HTTP {status} with an HTML page" + (f": {title}" if title else "")
    decoded = text.decode("utf-8", "replace")
    return decoded if len(decoded) <= MAX_TEXT else decoded[:MAX_TEXT] + "…"


def _retry_after(headers: Mapping[str, str], message: str) -> float | None:
    millis = _seconds(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = headers.get("retry-after")
    if value is not None:
        seconds = _seconds(value)
        if seconds is not None:
            return seconds
        delta = _date_delta(value, headers.get("date"))
        if delta is not None:
            return delta
    match = _TRY_AGAIN.search(message)
    if match:
        amount = float(match.group(1))
        return amount / 1000 if match.group(2).lower() == "ms" else amount
    return None


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _date_delta(value: str, date: str | None) -> float | None:
    """``Retry-After: <HTTP-date>`` minus the response's ``Date`` (RFC 9110 §10.2.3)."""
    if date is None:
        return None
    try:
        delta = (parsedate_to_datetime(value) - parsedate_to_datetime(date)).total_seconds()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, delta)
