"""Cohere v2 Chat wire facts shared by the request, response and stream halves of the dialect:
finish reasons, usage conversion, JSON loading and error classification.

Reference: wire-formats.md §0 and §7 (https://docs.cohere.com/v2/reference/chat ,
https://docs.cohere.com/reference/errors). Pure: no I/O, no clock, no logging.

Errors. Cohere answers a non-2xx status with ``{"message": "..."}`` (sometimes with an ``id``);
the status carries the meaning (the SDK has one error class per status), so classification is by
status, refined by the message for a too-long prompt:

======  ==========================================  =====================================
status  what Cohere means                           our class
======  ==========================================  =====================================
400     invalid request / "too many tokens: …"      ``UpstreamRequestError`` /
                                                    ``ContextLengthExceeded``
401     missing, invalid or expired key             ``UpstreamAuthError``
402     the account's billing limit is reached      ``UpstreamAuthError`` (key unusable)
403     forbidden                                   ``UpstreamAuthError``
404     unknown model or route                      ``UpstreamRequestError``
422     unprocessable request                       ``UpstreamRequestError``
429     rate limited (trial keys: per minute)       ``UpstreamRateLimited`` + ``Retry-After``
498     invalid token (SDK ``InvalidTokenError``)   ``UpstreamAuthError``
499     request cancelled (docs: try again)         ``UpstreamUnavailable``
500…    server errors; 504 gateway timeout          ``UpstreamUnavailable`` / ``UpstreamTimeout``
======  ==========================================  =====================================

An answer that ends with ``finish_reason`` ``ERROR`` or ``TIMEOUT`` (a 200 body, or a stream's
``message-end`` with ``delta.error``) is a failed attempt, not an answer: it raises
``UpstreamUnavailable`` / ``UpstreamTimeout`` so the relay can try elsewhere before the stream is
committed (and ends a committed stream with an error event), instead of passing a truncated answer
off as complete.
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
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamRequestError,
    UpstreamTimeout,
    UpstreamUnavailable,
    redact,
    upstream_error_for_status,
)
from unigate.ir import FinishReason, Usage

FINISH_REASONS: Mapping[str, FinishReason] = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}
"""Cohere ``finish_reason`` → OpenAI ``finish_reason`` (wire-formats.md §0.1). ``ERROR`` and
``TIMEOUT`` are not here: they raise (``failed_finish``)."""

FAILED_FINISHES: Mapping[str, type[UpstreamError]] = {"ERROR": UpstreamUnavailable, "TIMEOUT": UpstreamTimeout}

_BY_STATUS: Mapping[int, type[UpstreamError]] = {
    400: UpstreamRequestError,
    401: UpstreamAuthError,
    402: UpstreamAuthError,
    403: UpstreamAuthError,
    404: UpstreamRequestError,
    422: UpstreamRequestError,
    429: UpstreamRateLimited,
    498: UpstreamAuthError,
    499: UpstreamUnavailable,
    504: UpstreamTimeout,
}

# "too many tokens: total number of tokens in the prompt cannot exceed 4081 - received 4292. …",
# "too many tokens: max tokens must be less than or equal to 4096, …" (the errors reference).
_CONTEXT_RE = re.compile(r"too many tokens", re.IGNORECASE)


def finish_reason(value: object) -> FinishReason:
    """Map a ``finish_reason``; a missing or unknown value reads as ``stop`` (never a crash)."""
    if isinstance(value, str):
        return FINISH_REASONS.get(value, "stop")
    return "stop"


def failed_finish(value: object, message: object) -> UpstreamError | None:
    """The error an ``ERROR``/``TIMEOUT`` ending stands for (``message``: ``delta.error`` when
    Cohere gave one; an ``error`` with any other finish reason is a failure too, read as
    ``ERROR``); None for a successful ending."""
    cls = FAILED_FINISHES.get(value) if isinstance(value, str) else None
    if cls is None:
        if not (isinstance(message, str) and message):
            return None
        cls, value = UpstreamUnavailable, "ERROR"
    text = redact(message) if isinstance(message, str) and message else f"Cohere ended the answer with {value}"
    return cls(text, upstream_status=0, code=str(value))


def _count(value: object) -> int:
    """A token count: Cohere's SDK types them as numbers (``1024`` or ``1024.0``)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value <= 0:
        return 0
    return int(value)


def usage_from(usage: Mapping[str, Any]) -> Usage:
    """Cohere usage → IR usage (wire-formats.md §0.2).

    ``tokens.input_tokens`` / ``tokens.output_tokens`` are what the model read and wrote (the
    OpenAI meaning); ``billed_units`` are what is billed (smaller: Cohere does not bill its own
    prompt template) and stand in only when ``tokens`` is missing. ``cached_tokens`` is the part of
    the prompt that hit the cache. Thinking tokens are not reported apart, so ``reasoning_tokens``
    stays 0 (they are inside ``output_tokens``)."""
    tokens = usage.get("tokens")
    if not isinstance(tokens, Mapping):
        tokens = usage.get("billed_units")
    tokens = tokens if isinstance(tokens, Mapping) else {}
    return Usage(
        prompt_tokens=_count(tokens.get("input_tokens")),
        completion_tokens=_count(tokens.get("output_tokens")),
        cached_tokens=_count(usage.get("cached_tokens")),
    )


def load_object(raw: bytes | str, what: str) -> dict[str, Any]:
    """Parse a JSON object or raise ``UpstreamProtocolError`` naming ``what`` was unusable."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamProtocolError(f"Cohere {what} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise UpstreamProtocolError(f"Cohere {what} is not a JSON object")
    return value


def retry_after_header(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after`` (seconds) or ``retry-after-ms`` (any header case; the
    ``cohere`` SDK reads both). An HTTP-date ``retry-after`` is ignored: turning it into seconds
    needs a clock."""
    found: dict[str, str] = {k.lower(): v for k, v in headers.items() if k.lower() in ("retry-after", "retry-after-ms")}
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        if name not in found:
            continue
        try:
            value = float(found[name]) / scale
        except ValueError:
            continue
        if value >= 0 and value != float("inf"):
            return value
    return None


def decode_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    """Classify a non-2xx answer by status (module docstring); the message is Cohere's
    ``message`` (redacted), else the start of the body (an HTML page from a proxy), else the status."""
    retry_after = retry_after_header(headers)
    message = ""
    try:
        payload: Any = orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, Mapping) and isinstance(payload.get("message"), str):
        message = payload["message"]
    else:
        message = body[:500].decode("utf-8", errors="replace").strip()
    message = redact(message) or f"Cohere answered HTTP {status}"
    cls = _BY_STATUS.get(status)
    if cls is None:
        return upstream_error_for_status(status, message, retry_after=retry_after)
    if cls is UpstreamRequestError and _CONTEXT_RE.search(message):
        cls = ContextLengthExceeded
    return cls(message, upstream_status=status, retry_after=retry_after)
