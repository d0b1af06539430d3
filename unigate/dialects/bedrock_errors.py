"""Bedrock Runtime errors → the unigate error tree: HTTP answers and in-stream exceptions.

Reference: wire-formats.md §6.4 and botocore's ``bedrock-runtime`` model (each exception shape's
``httpStatusCode``), https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
("Errors").
Both Bedrock dialects (Converse, and Claude through InvokeModel) share it: InvokeModel errors are
Bedrock's, not Anthropic's.

The exception name comes from the ``x-amzn-ErrorType`` header (the part before ``:``), else the body's
``__type`` (``com.amazon…#ThrottlingException``: the part after ``#``) or ``code``; the message
from the body's ``message`` (or ``Message``). The name decides the class (``_BY_NAME``); an unknown
name falls back to the HTTP status. Bedrock sends no ``retry-after``; one is honoured if present.

Special cases: a ``ValidationException`` about the input length is ``ContextLengthExceeded``;
``ModelStreamErrorException`` (a model-side failure mid-stream) is a retryable
``UpstreamUnavailable``; ``ModelNotReadyException`` (HTTP 429, the model is being loaded) is
``UpstreamUnavailable`` too — it blames the channel's model, not the key's rate.
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

# exception name (lower-cased) → (the HTTP status Bedrock uses for it, our class). The status stands
# in for in-stream exceptions, which arrive under HTTP 200.
_BY_NAME: Mapping[str, tuple[int, type[UpstreamError]]] = {
    "validationexception": (400, UpstreamRequestError),
    # The account's quota is used up: not the client's fault and not over in seconds; like a refused key.
    "servicequotaexceededexception": (400, UpstreamAuthError),
    "accessdeniedexception": (403, UpstreamAuthError),
    "unrecognizedclientexception": (403, UpstreamAuthError),
    "invalidsignatureexception": (403, UpstreamAuthError),
    "expiredtokenexception": (403, UpstreamAuthError),
    "incompletesignatureexception": (403, UpstreamAuthError),
    "missingauthenticationtokenexception": (403, UpstreamAuthError),
    "resourcenotfoundexception": (404, UpstreamRequestError),
    "modeltimeoutexception": (408, UpstreamTimeout),
    "modelerrorexception": (424, UpstreamUnavailable),
    "modelstreamerrorexception": (424, UpstreamUnavailable),
    "throttlingexception": (429, UpstreamRateLimited),
    "modelnotreadyexception": (429, UpstreamUnavailable),
    "internalserverexception": (500, UpstreamUnavailable),
    "serviceunavailableexception": (503, UpstreamUnavailable),
    "serviceunavailable": (503, UpstreamUnavailable),
}

# "Input is too long for requested model." / "prompt is too long: 210345 tokens > 200000 maximum"
# (both ValidationException, wire-formats.md §6.4; message texts are observed, unverified).
_CONTEXT_RE = re.compile(
    r"input is too long|prompt is too long|too many input tokens|exceeds? (?:the )?(?:max(?:imum)? )?context",
    re.IGNORECASE,
)


def exception_name(headers: Mapping[str, str], payload: Mapping[str, Any] | None) -> str | None:
    """The exception's short name from ``x-amzn-ErrorType``, else the body's ``__type``/``code``."""
    for key, value in headers.items():
        if key.lower() == "x-amzn-errortype" and value:
            short: str = value.split(":", 1)[0].strip()
            return short or None
    if payload is not None:
        for name in ("__type", "code", "Code"):
            found = payload.get(name)
            if isinstance(found, str) and found:
                return found.rsplit("#", 1)[-1]
    return None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                seconds = float(value)
            except ValueError:
                return None
            return seconds if seconds >= 0 else None
    return None


def error_for(name: str | None, message: str, status: int | None, retry_after: float | None = None) -> UpstreamError:
    """Classify Bedrock exception ``name`` (any case) with ``message``; ``status`` is the HTTP status
    when it came as a response, None for an in-stream exception."""
    text = redact(message) or f"Bedrock {name or 'error'}"
    known = _BY_NAME.get((name or "").lower())
    if known is None:
        if status is None or status < 400:
            status = 502
        return upstream_error_for_status(status, text, retry_after=retry_after, code=name)
    default_status, cls = known
    if status is None or status < 400:
        status = default_status
    if cls is UpstreamRequestError and _CONTEXT_RE.search(text):
        cls = ContextLengthExceeded
    return cls(text, upstream_status=status, retry_after=retry_after, code=name)


def decode_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    """A non-2xx Bedrock answer (``{"message": …}`` plus ``x-amzn-ErrorType``)."""
    try:
        payload: Any = orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError:
        payload = None
    payload = payload if isinstance(payload, dict) else None
    message = ""
    if payload is not None:
        raw = payload.get("message", payload.get("Message"))
        message = raw if isinstance(raw, str) else ""
    elif body.strip():
        message = body[:500].decode("utf-8", "replace").strip()
    return error_for(exception_name(headers, payload), message, status, _retry_after(headers))


def stream_exception(name: str | None, data: str) -> UpstreamError:
    """An in-stream ``exception``/``error`` frame (``BedrockEvent`` of that kind) as an error.

    ``modelStreamErrorException`` carries ``originalStatusCode``/``originalMessage``; they are
    added to the message when present."""
    try:
        payload: Any = orjson.loads(data) if data.strip() else None
    except orjson.JSONDecodeError:
        payload = None
    message = data.strip()[:500]
    if isinstance(payload, dict):
        raw = payload.get("message", payload.get("Message"))
        message = raw if isinstance(raw, str) else ""
        original = payload.get("originalMessage")
        code = payload.get("originalStatusCode")
        if isinstance(original, str) and original and original != message:
            message = f"{message} (model said{f' {code}' if isinstance(code, int) else ''}: {original})"
    return error_for(name, message, None)
