"""``attempts_json``: whichever path it takes (the cached single-attempt text, orjson as is, or
field by field), the column reads back as the sanitised attempts."""

from __future__ import annotations

import math

import orjson
from hypothesis import given
from hypothesis import strategies as st

from unigate.stats.records import AttemptRecord
from unigate.stats.rows import attempts_json

TEXT = st.text(max_size=12) | st.sampled_from(["openai", "azure-east", "gpt-4o", "ok", "key-0123456789"])
LATENCY = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, 1.2, 1e-05, 1e16, -0.0])
STATUS = st.integers(min_value=-(2**40), max_value=2**40) | st.sampled_from([0, 200, 429, 500])


def expected(a: AttemptRecord) -> dict[str, object]:
    """What the column must hold for ``a``: text storable anywhere, status clamped, finite."""

    def clean(value: str) -> str:
        return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")

    return {
        "channel": clean(a.channel),
        "upstream_model": clean(a.upstream_model),
        "key_fingerprint": None if a.key_fingerprint is None else clean(a.key_fingerprint),
        "outcome": clean(a.outcome),
        "status": min(max(a.status, -(2**31)), 2**31 - 1),
        "latency_ms": a.latency_ms if math.isfinite(a.latency_ms) else 0.0,
    }


ATTEMPTS = st.builds(
    AttemptRecord,
    channel=TEXT,
    upstream_model=TEXT,
    key_fingerprint=st.none() | TEXT,
    outcome=TEXT,
    status=STATUS,
    latency_ms=LATENCY,
)


@given(st.lists(ATTEMPTS, max_size=3))
def test_reads_back_as_the_sanitised_attempts(attempts: list[AttemptRecord]) -> None:
    column = attempts_json(attempts)
    assert "\\u0000" not in column  # PostgreSQL's jsonb refuses it
    assert orjson.loads(column) == [expected(a) for a in attempts]


def test_the_single_attempt_text_is_cached_per_attempt_and_only_the_latency_varies() -> None:
    first = AttemptRecord(
        channel="c", upstream_model="m", key_fingerprint="k", outcome="ok", status=200, latency_ms=1.5
    )
    second = AttemptRecord(
        channel="c", upstream_model="m", key_fingerprint="k", outcome="ok", status=200, latency_ms=2.25
    )
    assert attempts_json([first]) == orjson.dumps([expected(first)]).decode()
    assert attempts_json([second]) == orjson.dumps([expected(second)]).decode()
    other = AttemptRecord(
        channel="c", upstream_model="m", key_fingerprint="k", outcome="UpstreamTimeout", status=0, latency_ms=2.25
    )
    assert orjson.loads(attempts_json([other]))[0]["outcome"] == "UpstreamTimeout"
