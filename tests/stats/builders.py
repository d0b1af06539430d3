"""Request records for the statistics tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.stats.conftest import NOW
from unigate.stats.records import AttemptRecord, RequestRecord

CHAT = "POST /v1/chat/completions"


def attempt(channel: str, outcome: str = "ok", status: int = 200, **kw: Any) -> AttemptRecord:
    values: dict[str, Any] = {"upstream_model": "up-model", "key_fingerprint": "key-0123456789", "latency_ms": 10.0}
    values.update(kw)
    return AttemptRecord(channel=channel, outcome=outcome, status=status, **values)


def record(request_id: str, minutes_ago: float = 1, **kw: Any) -> RequestRecord:
    values: dict[str, Any] = {
        "timestamp": NOW - timedelta(minutes=minutes_ago),
        "endpoint": CHAT,
        "client_key": "alice",
        "model": "gpt-4o",
        "status": 200,
        "success": True,
        "latency_ms": 100.0,
    }
    values.update(kw)
    return RequestRecord(request_id=request_id, **values)


def full_record(request_id: str = "req-full", when: datetime = NOW) -> RequestRecord:
    """A record with every field set to a non-default value."""
    return RequestRecord(
        request_id=request_id,
        timestamp=when,
        endpoint=CHAT,
        client_key="team-a",
        model="smart",
        channel="azure-east",
        upstream_model="gpt-4o-2024-08-06",
        upstream_key="key-aaaaaaaaaa",
        attempts=(
            AttemptRecord(
                channel="openai",
                upstream_model="gpt-4o",
                key_fingerprint="key-bbbbbbbbbb",
                outcome="UpstreamRateLimited",
                status=429,
                latency_ms=12.25,
            ),
            AttemptRecord(
                channel="azure-east",
                upstream_model="gpt-4o-2024-08-06",
                key_fingerprint="key-aaaaaaaaaa",
                outcome="ok",
                status=200,
                latency_ms=250.5,
            ),
        ),
        status=200,
        success=True,
        error_class="UpstreamRateLimited",
        error_message="first attempt rate limited",
        latency_ms=275.125,
        ttft_ms=80.5,
        prompt_tokens=1234,
        completion_tokens=567,
        cached_tokens=1000,
        reasoning_tokens=42,
        tokens_estimated=True,
        cost=0.012345,
        stream=True,
        moderation_ms=3.5,
        content="hello, world",
    )
