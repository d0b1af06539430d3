"""Anthropic Messages wire facts shared by the request, response and stream halves of the dialect:
the stop-reason table, usage conversion, JSON loading and error classification.

Reference: wire-formats.md §0 and §2 (https://platform.claude.com/docs/en/api/errors ,
https://platform.claude.com/docs/en/api/messages). Pure: no I/O, no clock, no logging.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from unigate.errors import (
    ContentFiltered,
    ContextLengthExceeded,
    UpstreamAuthError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamRequestError,
    UpstreamTimeout,
    UpstreamUnavailable,
    redact,
    upstream_error_for_status,
)
from unigate.ir import FinishReason, Usage

STOP_REASONS: Mapping[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    # A server-tool turn was paused; the client resends to continue. OpenAI has no slot for
    # "paused", and the answer so far is complete as far as it goes, so it reads as ``stop``.
    "pause_turn": "stop",
}
"""Anthropic ``stop_reason`` → OpenAI ``finish_reason`` (wire-formats.md §0.1)."""


def finish_reason(stop_reason: object) -> FinishReason:
    """Map a ``stop_reason``; a missing or unknown value reads as ``stop`` (never a crash)."""
    if isinstance(stop_reason, str):
        return STOP_REASONS.get(stop_reason, "stop")
    return "stop"


def _count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_from(usage: Mapping[str, Any]) -> Usage:
    """Anthropic usage → IR usage (wire-formats.md §0.2).

    ``input_tokens`` excludes cached input, so the OpenAI ``prompt_tokens`` is the sum of
    ``input_tokens``, ``cache_creation_input_tokens`` and ``cache_read_input_tokens``; cache reads
    are the ``cached_tokens``. ``output_tokens`` already includes thinking; when the provider
    reports ``output_tokens_details.thinking_tokens`` it becomes ``reasoning_tokens``.
    """
    details = usage.get("output_tokens_details")
    reasoning = _count(details, "thinking_tokens") if isinstance(details, Mapping) else 0
    cache_read = _count(usage, "cache_read_input_tokens")
    return Usage(
        prompt_tokens=_count(usage, "input_tokens") + _count(usage, "cache_creation_input_tokens") + cache_read,
        completion_tokens=_count(usage, "output_tokens"),
        cached_tokens=cache_read,
        reasoning_tokens=reasoning,
    )


def load_object(raw: bytes | str, what: str) -> dict[str, Any]:
    """Parse a JSON object or raise ``UpstreamProtocolError`` naming ``what`` was unusable."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamProtocolError(f"Anthropic {what} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise UpstreamProtocolError(f"Anthropic {what} is not a JSON object")
    return value


# error.type → (the HTTP status Anthropic uses for it, our class). The status stands in when the
# error arrives without one of its own (an in-stream ``error`` event, an error body under 200).
_ERROR_TYPES: Mapping[str, tuple[int, type[UpstreamError]]] = {
    "invalid_request_error": (400, UpstreamRequestError),
    "authentication_error": (401, UpstreamAuthError),
    # The channel's account cannot pay: the key is unusable for a long time, like a refused key.
    "billing_error": (402, UpstreamAuthError),
    "permission_error": (403, UpstreamAuthError),
    "not_found_error": (404, UpstreamRequestError),
    "conflict_error": (409, UpstreamUnavailable),
    "request_too_large": (413, UpstreamRequestError),
    "rate_limit_error": (429, UpstreamRateLimited),
    "api_error": (500, UpstreamUnavailable),
    "timeout_error": (504, UpstreamTimeout),
    "overloaded_error": (529, UpstreamUnavailable),
}

# "prompt is too long: 210345 tokens > 200000 maximum" and "input length and `max_tokens` exceed
# context limit: 197626 + 8192 > 200000, ..." (both 400 invalid_request_error).
_CONTEXT_RE = re.compile(r"prompt is too long|exceeds? (?:the )?context (?:limit|window)", re.IGNORECASE)
# "Output blocked by content filtering policy" (400 invalid_request_error). Unverified: seen in
# third-party reports, not in the documented examples.
_FILTER_RE = re.compile(r"content filtering policy", re.IGNORECASE)
# A 429 with this code will not clear by waiting a few seconds: the key's spend limit is reached.
_SPEND_LIMIT = "enforced_spend_limit_reached"
_GOOGLE_DELAY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def retry_after_header(headers: Mapping[str, str]) -> float | None:
    """``retry-after`` in seconds (any header case). An HTTP-date form is ignored: turning it into
    seconds needs a clock, and Anthropic sends seconds."""
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                seconds = float(value)
            except ValueError:
                return None
            return seconds if seconds >= 0 else None
    return None


def error_from_payload(payload: Mapping[str, Any], status: int | None, retry_after: float | None) -> UpstreamError:
    """Classify an Anthropic ``{"type":"error","error":{"type","message"}}`` body or event.

    ``status`` is the HTTP status when the error came as a response (None for an in-stream event
    or an error body under 200, in which case the status Anthropic uses for the type stands in).
    """
    error = payload.get("error")
    error = error if isinstance(error, Mapping) else {}
    raw_type, raw_message = error.get("type"), error.get("message")
    err_type = raw_type if isinstance(raw_type, str) else None
    message = redact(raw_message if isinstance(raw_message, str) else "") or f"Anthropic {err_type or 'error'}"
    known = _ERROR_TYPES.get(err_type or "")
    if known is None:
        if status is None or status < 400:
            status = 502
        return upstream_error_for_status(status, message, retry_after=retry_after, code=err_type)
    default_status, cls = known
    if status is None or status < 400:
        status = default_status
    if cls is UpstreamRequestError:
        if _CONTEXT_RE.search(message):
            cls = ContextLengthExceeded
        elif _FILTER_RE.search(message):
            cls = ContentFiltered
    elif cls is UpstreamRateLimited:
        details = error.get("details")
        if isinstance(details, Mapping) and details.get("error_code") == _SPEND_LIMIT:
            return UpstreamAuthError(message, upstream_status=status, code=_SPEND_LIMIT)
    return cls(message, upstream_status=status, retry_after=retry_after, code=err_type)


def _google_error(error: Mapping[str, Any], status: int, retry_after: float | None) -> UpstreamError:
    """Vertex's own errors (auth, quota) in the Google RPC shape ``{"error":{"code","message","status",
    "details"}}`` (wire-formats.md §3, §4); ``RetryInfo.retryDelay`` ("37s") backs up ``retry-after``."""
    raw_message, raw_code = error.get("message"), error.get("status")
    message = raw_message if isinstance(raw_message, str) else ""
    details = error.get("details")
    if retry_after is None and isinstance(details, list):
        for detail in details:
            if isinstance(detail, Mapping) and isinstance(detail.get("retryDelay"), str):
                match = _GOOGLE_DELAY_RE.match(detail["retryDelay"])
                if match:
                    retry_after = float(match.group(1))
    code = raw_code if isinstance(raw_code, str) else None
    return upstream_error_for_status(status, redact(message) or f"HTTP {status}", retry_after=retry_after, code=code)


def decode_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    """Classify a non-2xx answer: Anthropic's error body by ``error.type`` first, then Vertex's
    Google RPC shape, then the HTTP status alone (an HTML page from a proxy, an empty body)."""
    retry_after = retry_after_header(headers)
    try:
        payload: Any = orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, list) and len(payload) == 1:
        payload = payload[0]  # Google sometimes wraps the error in a one-element array
    if isinstance(payload, Mapping):
        error = payload.get("error")
        if payload.get("type") == "error" and isinstance(error, Mapping):
            return error_from_payload(payload, status, retry_after)
        if isinstance(error, Mapping) and "message" in error:
            return _google_error(error, status, retry_after)
    text = body[:500].decode("utf-8", errors="replace").strip()
    return upstream_error_for_status(status, redact(text) or f"HTTP {status}", retry_after=retry_after)
