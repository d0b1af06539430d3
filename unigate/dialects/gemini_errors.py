"""Google RPC error bodies (Gemini API and Vertex AI) → the unigate error tree.

Shape: ``{"error": {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED", "details": [...]}}``,
sometimes wrapped in a one-element list (the non-SSE stream form). Docs:
https://ai.google.dev/gemini-api/docs/troubleshooting ,
https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/api-errors (wire-formats.md §3).

Classification, most specific first: an ``API_KEY_*`` ``ErrorInfo`` reason or "API key not valid"
(Gemini answers a bad key with 400 ``INVALID_ARGUMENT``) → ``UpstreamAuthError``; "input token count …
exceeds the maximum" → ``ContextLengthExceeded``; then the RPC ``status`` through ``_BY_STATUS``; then
the HTTP code through ``upstream_error_for_status``. ``FAILED_PRECONDITION`` (billing not enabled,
unsupported user location) is the channel's problem, not the request's, so it is an auth error: the
key is cooled and the next channel tried. ``retry_after`` comes from ``RetryInfo.retryDelay``
(``"37s"``), else from a ``Retry-After`` header. Messages pass through ``redact``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from unigate.errors import (
    ContextLengthExceeded,
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRequestError,
    UpstreamTimeout,
    UpstreamUnavailable,
    redact,
    upstream_error_for_status,
)

_BY_STATUS: dict[str, type[UpstreamError]] = {
    "INVALID_ARGUMENT": UpstreamRequestError,
    "OUT_OF_RANGE": UpstreamRequestError,
    "NOT_FOUND": UpstreamRequestError,
    "ALREADY_EXISTS": UpstreamRequestError,
    "FAILED_PRECONDITION": UpstreamAuthError,
    "UNAUTHENTICATED": UpstreamAuthError,
    "PERMISSION_DENIED": UpstreamAuthError,
    "RESOURCE_EXHAUSTED": UpstreamRateLimited,
    "UNAVAILABLE": UpstreamUnavailable,
    "INTERNAL": UpstreamUnavailable,
    "UNKNOWN": UpstreamUnavailable,
    "ABORTED": UpstreamUnavailable,
    "CANCELLED": UpstreamUnavailable,
    "DEADLINE_EXCEEDED": UpstreamTimeout,
}

_CONTEXT_LENGTH = re.compile(
    r"input token count.*exceeds the maximum|exceeds the maximum number of tokens|context window",
    re.IGNORECASE | re.DOTALL,
)
_BAD_KEY = re.compile(r"API key (not valid|expired|invalid)", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_MAX_MESSAGE = 2000


def decode_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    """Classify a non-2xx Gemini/Vertex answer (by body first, then by HTTP status)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, list) and payload:
        payload = payload[0]
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        text = body.decode("utf-8", errors="replace").strip()[:_MAX_MESSAGE]
        message = redact(text) or f"upstream answered HTTP {status}"
        return upstream_error_for_status(status, message, retry_after=_header_retry_after(headers))
    return error_from_object(error, status=status, headers=headers)


def error_from_object(
    error: Mapping[str, Any], *, status: int = 0, headers: Mapping[str, str] | None = None
) -> UpstreamError:
    """Classify one Google ``error`` object; ``status`` 0 means "take it from ``error.code``"
    (an error event inside a 200 stream)."""
    code = error.get("code")
    if not status and isinstance(code, int):
        status = code
    rpc_status = error.get("status") if isinstance(error.get("status"), str) else None
    message = redact(str(error.get("message") or rpc_status or f"upstream answered HTTP {status}"))
    details = error.get("details")
    details = details if isinstance(details, list) else []
    retry_after = _retry_delay(details)
    if retry_after is None and headers is not None:
        retry_after = _header_retry_after(headers)
    cls: type[UpstreamError] | None
    err_code: str | None = rpc_status
    if _bad_key(details) or _BAD_KEY.search(message):
        cls = UpstreamAuthError
    elif rpc_status in (None, "INVALID_ARGUMENT") and _CONTEXT_LENGTH.search(message):
        cls, err_code = ContextLengthExceeded, "context_length_exceeded"
    else:
        cls = _BY_STATUS.get(rpc_status) if rpc_status else None
    if cls is None and status:
        return upstream_error_for_status(status, message, retry_after=retry_after, code=err_code)
    if cls is None:  # an error event with neither status nor code: the provider failed mid-answer
        cls = UpstreamUnavailable
    return cls(message, upstream_status=status, retry_after=retry_after, code=err_code)


def _bad_key(details: list[Any]) -> bool:
    for item in details:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("google.rpc.ErrorInfo"):
            reason = item.get("reason")
            if isinstance(reason, str) and reason.startswith("API_KEY_"):
                return True
    return False


def _retry_delay(details: list[Any]) -> float | None:
    for item in details:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = item.get("retryDelay")
            match = _DURATION.match(delay) if isinstance(delay, str) else None
            if match:
                return float(match.group(1))
    return None


def _header_retry_after(headers: Mapping[str, str]) -> float | None:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None
