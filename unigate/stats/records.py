"""What the statistics layer stores: one :class:`RequestRecord` per client request, carrying one
:class:`AttemptRecord` per upstream attempt.

Contract (the request path builds these; the store trusts them):

- Records are frozen and hold only plain values, so they can be queued, copied between tasks and
  serialised (:meth:`RequestRecord.to_row` is JSON-ready; :meth:`RequestRecord.from_row` inverts it).
- ``client_key`` is the key's label or fingerprint and ``upstream_key`` / ``key_fingerprint`` are
  fingerprints: **never** a key. ``error_message`` is already redacted by the producer.
- ``content`` is ``None`` unless the operator opted in to storing message content.
- ``timestamp`` is when the request arrived, in UTC; a naive value is taken to be UTC.
- ``cost`` is in US dollars, 0 when the price is unknown; ``tokens_estimated`` is true when the
  token counts were computed locally instead of reported by the provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["AttemptRecord", "RequestRecord"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptRecord:
    """One try at one upstream: which channel, model and key, and how it ended.

    ``outcome`` is ``"ok"`` or the name of the error class that ended the attempt
    (``"UpstreamRateLimited"``, ``"UpstreamTimeout"``, …); ``status`` is the HTTP status the
    upstream answered with (0 when none arrived, e.g. a connect error).
    """

    channel: str
    upstream_model: str
    key_fingerprint: str | None
    outcome: str
    status: int
    latency_ms: float

    @property
    def success(self) -> bool:
        return self.outcome == "ok"

    def to_row(self) -> dict[str, Any]:
        """A JSON-ready dict with exactly the dataclass fields."""
        return {
            "channel": self.channel,
            "upstream_model": self.upstream_model,
            "key_fingerprint": self.key_fingerprint,
            "outcome": self.outcome,
            "status": self.status,
            "latency_ms": self.latency_ms,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AttemptRecord:
        return cls(
            channel=row["channel"],
            upstream_model=row["upstream_model"],
            key_fingerprint=row["key_fingerprint"],
            outcome=row["outcome"],
            status=int(row["status"]),
            latency_ms=float(row["latency_ms"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRecord:
    """One client request, as the statistics store keeps it.

    ``channel`` / ``upstream_model`` / ``upstream_key`` name the attempt that produced the answer
    (the last attempt when all failed; ``None`` when no upstream was tried). ``status`` is what the
    client got; ``success`` is true when the client got a complete answer.
    ``request_id`` must be unique. On PostgreSQL, writing a record whose id is already stored is
    a no-op, which makes a retried batch whose ``COMMIT`` had in fact succeeded harmless; SQLite
    keeps no index on it (migration 0003): its writer process settles a commit in doubt itself
    (:mod:`unigate.stats.sqlite_process`).
    """

    request_id: str
    timestamp: datetime
    endpoint: str
    client_key: str | None
    model: str | None
    status: int
    success: bool
    latency_ms: float
    channel: str | None = None
    upstream_model: str | None = None
    upstream_key: str | None = None
    attempts: tuple[AttemptRecord, ...] = field(default=())
    error_class: str | None = None
    error_message: str | None = None
    ttft_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    tokens_estimated: bool = False
    cost: float = 0.0
    stream: bool = False
    moderation_ms: float | None = None
    content: str | None = None

    def __post_init__(self) -> None:
        stamp = self.timestamp
        stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
        object.__setattr__(self, "timestamp", stamp)
        if not isinstance(self.attempts, tuple):
            object.__setattr__(self, "attempts", tuple(self.attempts))

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_row(self) -> dict[str, Any]:
        """A JSON-ready dict: every field, ``timestamp`` as ISO 8601 (UTC, ``+00:00``) and
        ``attempts`` as a list of dicts. This is also the shape the raw-records API returns."""
        return {
            "request_id": self.request_id,
            "timestamp": self.timestamp.isoformat(),
            "endpoint": self.endpoint,
            "client_key": self.client_key,
            "model": self.model,
            "channel": self.channel,
            "upstream_model": self.upstream_model,
            "upstream_key": self.upstream_key,
            "attempts": [a.to_row() for a in self.attempts],
            "status": self.status,
            "success": self.success,
            "error_class": self.error_class,
            "error_message": self.error_message,
            "latency_ms": self.latency_ms,
            "ttft_ms": self.ttft_ms,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "tokens_estimated": self.tokens_estimated,
            "cost": self.cost,
            "stream": self.stream,
            "moderation_ms": self.moderation_ms,
            "content": self.content,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RequestRecord:
        """Inverse of :meth:`to_row` (extra keys are ignored)."""
        stamp = row["timestamp"]
        return cls(
            request_id=row["request_id"],
            timestamp=datetime.fromisoformat(stamp) if isinstance(stamp, str) else stamp,
            endpoint=row["endpoint"],
            client_key=row["client_key"],
            model=row["model"],
            channel=row["channel"],
            upstream_model=row["upstream_model"],
            upstream_key=row["upstream_key"],
            attempts=tuple(AttemptRecord.from_row(a) for a in row["attempts"]),
            status=int(row["status"]),
            success=bool(row["success"]),
            error_class=row["error_class"],
            error_message=row["error_message"],
            latency_ms=float(row["latency_ms"]),
            ttft_ms=row["ttft_ms"],
            prompt_tokens=int(row["prompt_tokens"]),
            completion_tokens=int(row["completion_tokens"]),
            cached_tokens=int(row["cached_tokens"]),
            reasoning_tokens=int(row["reasoning_tokens"]),
            tokens_estimated=bool(row["tokens_estimated"]),
            cost=float(row["cost"]),
            stream=bool(row["stream"]),
            moderation_ms=row["moderation_ms"],
            content=row["content"],
        )
