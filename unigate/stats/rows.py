"""Records ⇄ table rows, with the sanitising every backend needs.

``request_rows`` / ``channel_rows`` turn records into insert parameters that any supported database
accepts, whatever the producer put in them:

- ``\\x00`` in text becomes U+FFFD (PostgreSQL ``TEXT`` rejects NUL); lone surrogates become ``?``
  (they cannot be encoded as UTF-8);
- ``error_message`` is cut to :data:`MAX_ERROR_CHARS` characters;
- integers are clamped to ``[0, 2**63 - 1]`` (token counts) or the 32-bit range (status);
- non-finite floats (NaN, ±inf) become 0 in required columns and NULL in optional ones.

``record_from_rows`` rebuilds a :class:`RequestRecord` (as read back, i.e. sanitised) from a
``request_stats`` row and its ``channel_stats`` rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from unigate.stats.records import AttemptRecord, RequestRecord

__all__ = ["MAX_ERROR_CHARS", "channel_rows", "clean_text", "record_from_rows", "request_rows"]

MAX_ERROR_CHARS = 4000
_INT64_MAX = 2**63 - 1
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def clean_text(value: str) -> str:
    """``value`` made storable in PostgreSQL ``TEXT`` and SQLite: NUL → U+FFFD, lone surrogates → ``?``."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if value.isascii():  # the common case: nothing more to check
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _text(value: str | None, limit: int | None = None) -> str | None:
    if value is None:
        return None
    value = clean_text(value if type(value) is str else str(value))
    return value[:limit] if limit is not None else value


def _required_text(value: str | None) -> str:
    return _text(value) or ""


def _count(value: int) -> int:
    return min(max(int(value), 0), _INT64_MAX)


def _status(value: int) -> int:
    return min(max(int(value), _INT32_MIN), _INT32_MAX)


def _number(value: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else 0.0


def _optional_number(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def request_rows(records: Sequence[RequestRecord]) -> list[dict[str, Any]]:
    """Insert parameters for ``request_stats``, one dict per record."""
    rows = []
    for r in records:
        prompt, completion = _count(r.prompt_tokens), _count(r.completion_tokens)
        rows.append(
            {
                "request_id": _required_text(r.request_id),
                "timestamp": r.timestamp,
                "endpoint": _required_text(r.endpoint),
                "client_key": _text(r.client_key),
                "model": _text(r.model),
                "channel": _text(r.channel),
                "upstream_model": _text(r.upstream_model),
                "upstream_key": _text(r.upstream_key),
                "attempt_count": len(r.attempts),
                "status": _status(r.status),
                "success": bool(r.success),
                "error_class": _text(r.error_class),
                "error_message": _text(r.error_message, MAX_ERROR_CHARS),
                "latency_ms": _number(r.latency_ms),
                "ttft_ms": _optional_number(r.ttft_ms),
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "cached_tokens": _count(r.cached_tokens),
                "reasoning_tokens": _count(r.reasoning_tokens),
                "total_tokens": min(prompt + completion, _INT64_MAX),
                "tokens_estimated": bool(r.tokens_estimated),
                "cost": _number(r.cost),
                "stream": bool(r.stream),
                "moderation_ms": _optional_number(r.moderation_ms),
                "content": _text(r.content),
            }
        )
    return rows


def channel_rows(records: Sequence[RequestRecord]) -> list[dict[str, Any]]:
    """Insert parameters for ``channel_stats``: one dict per attempt of every record."""
    rows = []
    for r in records:
        request_id, model = _required_text(r.request_id), _text(r.model)
        for index, a in enumerate(r.attempts):
            rows.append(
                {
                    "request_id": request_id,
                    "attempt": index,
                    "timestamp": r.timestamp,
                    "channel": _required_text(a.channel),
                    "model": model,
                    "upstream_model": _required_text(a.upstream_model),
                    "key_fingerprint": _text(a.key_fingerprint),
                    "success": a.outcome == "ok",
                    "status": _status(a.status),
                    "outcome": _required_text(a.outcome),
                    "latency_ms": _number(a.latency_ms),
                }
            )
    return rows


def record_from_rows(row: Mapping[str, Any], attempts: Iterable[Mapping[str, Any]]) -> RequestRecord:
    """A record rebuilt from its ``request_stats`` row and its ``channel_stats`` rows (in order)."""
    return RequestRecord(
        request_id=row["request_id"],
        timestamp=row["timestamp"],
        endpoint=row["endpoint"],
        client_key=row["client_key"],
        model=row["model"],
        channel=row["channel"],
        upstream_model=row["upstream_model"],
        upstream_key=row["upstream_key"],
        attempts=tuple(
            AttemptRecord(
                channel=a["channel"],
                upstream_model=a["upstream_model"],
                key_fingerprint=a["key_fingerprint"],
                outcome=a["outcome"],
                status=int(a["status"]),
                latency_ms=float(a["latency_ms"]),
            )
            for a in attempts
        ),
        status=int(row["status"]),
        success=bool(row["success"]),
        error_class=row["error_class"],
        error_message=row["error_message"],
        latency_ms=float(row["latency_ms"]),
        ttft_ms=None if row["ttft_ms"] is None else float(row["ttft_ms"]),
        prompt_tokens=int(row["prompt_tokens"]),
        completion_tokens=int(row["completion_tokens"]),
        cached_tokens=int(row["cached_tokens"]),
        reasoning_tokens=int(row["reasoning_tokens"]),
        tokens_estimated=bool(row["tokens_estimated"]),
        cost=float(row["cost"]),
        stream=bool(row["stream"]),
        moderation_ms=None if row["moderation_ms"] is None else float(row["moderation_ms"]),
        content=row["content"],
    )
