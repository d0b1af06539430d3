"""Pricing: uni-api's prefix lookup of ``preferences.model_price`` and per-request cost."""

from __future__ import annotations

import pytest

from unigate.config.schema import GlobalPreferences
from unigate.config.values import Price
from unigate.ir import Usage
from unigate.pricing import PriceTable, cost
from unigate.stats.records import RequestRecord

GPT4O = Price(2.5, 10.0)
GPT4O_MINI = Price(0.15, 0.6)
GPT4 = Price(30.0, 60.0)
CLAUDE = Price(3.0, 15.0)
DEFAULT = Price(1.0, 2.0)

TABLE = PriceTable({"gpt-4": GPT4, "gpt-4o": GPT4O, "gpt-4o-mini": GPT4O_MINI, "claude-3-5-sonnet": CLAUDE})
WITH_DEFAULT = PriceTable({"gpt-4o": GPT4O, "default": DEFAULT})


@pytest.mark.parametrize(
    ("table", "model", "upstream", "expected"),
    [
        # exact key
        (TABLE, "gpt-4o", None, GPT4O),
        (TABLE, "gpt-4", None, GPT4),
        # longest prefix wins, whatever the key order
        (TABLE, "gpt-4o-2024-08-06", None, GPT4O),
        (TABLE, "gpt-4o-mini-2024-07-18", None, GPT4O_MINI),
        (TABLE, "gpt-4-turbo", None, GPT4),
        (TABLE, "claude-3-5-sonnet-20241022", None, CLAUDE),
        # prefix, not substring; case-sensitive
        (TABLE, "my-gpt-4o", None, None),
        (TABLE, "GPT-4o", None, None),
        # the requested alias is looked up before the upstream model name …
        (TABLE, "gpt-4o", "claude-3-5-sonnet-20241022", GPT4O),
        # … and the upstream name when the alias matches nothing
        (TABLE, "smart", "claude-3-5-sonnet-20241022", CLAUDE),
        (TABLE, "smart", "gpt-4o-mini", GPT4O_MINI),
        (TABLE, None, "gpt-4o", GPT4O),
        # unpriced: nothing matches and there is no default (no hidden 0.3,1)
        (TABLE, "llama-3-70b", "meta/llama-3-70b", None),
        (TABLE, None, None, None),
        (TABLE, "", "", None),
        # default only when neither name matches
        (WITH_DEFAULT, "llama-3-70b", None, DEFAULT),
        (WITH_DEFAULT, "smart", "gpt-4o-2024-08-06", GPT4O),
        (WITH_DEFAULT, None, None, DEFAULT),
        (PriceTable({}), "gpt-4o", None, None),
    ],
)
def test_price_for(table: PriceTable, model: str | None, upstream: str | None, expected: Price | None) -> None:
    assert table.price_for(model, upstream) == expected
    assert table.price_for(model, upstream) == expected  # the memo answers the same


def test_default_argument_wins_over_default_key() -> None:
    table = PriceTable({"default": DEFAULT}, default=GPT4)
    assert table.default == GPT4
    assert table.price_for("anything") == GPT4


def test_default_key_is_not_a_prefix() -> None:
    assert PriceTable({"default": DEFAULT}).match("default-model") is None


def test_truthiness() -> None:
    assert not PriceTable({})
    assert PriceTable({"default": DEFAULT})
    assert TABLE


def test_from_preferences_parses_uni_api_strings() -> None:
    prefs = GlobalPreferences.model_validate({"model_price": {"gpt-4o": "2.5,10", "default": "0.3,1", "o1": 15}})
    table = PriceTable.from_preferences(prefs)
    assert table.price_for("gpt-4o-mini") == Price(2.5, 10.0)
    assert table.price_for("o1-preview") == Price(15.0, 15.0)
    assert table.price_for("unknown") == Price(0.3, 1.0)
    assert table.default == Price(0.3, 1.0)


@pytest.mark.parametrize(
    ("price", "usage", "expected"),
    [
        (GPT4O, Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000), 12.5),
        (GPT4O, Usage(prompt_tokens=1000, completion_tokens=500), (1000 * 2.5 + 500 * 10) / 1e6),
        # cached tokens are part of prompt_tokens and priced as input: no extra charge, no discount
        (GPT4O, Usage(prompt_tokens=1000, completion_tokens=0, cached_tokens=800), 1000 * 2.5 / 1e6),
        # reasoning tokens are part of completion_tokens
        (GPT4O, Usage(prompt_tokens=0, completion_tokens=100, reasoning_tokens=60), 100 * 10 / 1e6),
        (GPT4O, Usage(), 0.0),
        (GPT4O, Usage(prompt_tokens=-5, completion_tokens=10), 10 * 10 / 1e6),
        (None, Usage(prompt_tokens=1000, completion_tokens=1000), 0.0),
        (Price(0.0, 0.0), Usage(prompt_tokens=1000, completion_tokens=1000), 0.0),
    ],
)
def test_cost(price: Price | None, usage: Usage, expected: float) -> None:
    assert cost(price, usage) == pytest.approx(expected, rel=1e-12, abs=0)


def test_table_cost_takes_recording_argument_order() -> None:
    usage = Usage(prompt_tokens=2000, completion_tokens=1000)
    assert TABLE.cost("smart", "gpt-4o", usage) == pytest.approx((2000 * 2.5 + 1000 * 10) / 1e6)
    assert TABLE.cost("llama", None, usage) == 0.0
    assert WITH_DEFAULT.cost("llama", None, usage) == pytest.approx((2000 * 1 + 1000 * 2) / 1e6)


def test_cost_accepts_a_request_record() -> None:
    from datetime import UTC, datetime

    record = RequestRecord(
        request_id="r",
        timestamp=datetime(2025, 1, 1, tzinfo=UTC),
        endpoint="POST /v1/chat/completions",
        client_key="alice",
        model="gpt-4o",
        status=200,
        success=True,
        latency_ms=1.0,
        prompt_tokens=10,
        completion_tokens=20,
    )
    assert cost(GPT4O, record) == pytest.approx((10 * 2.5 + 20 * 10) / 1e6)


def test_memo_is_bounded() -> None:
    table = PriceTable({"gpt-4o": GPT4O})
    for i in range(10_000):
        assert table.price_for(f"random-{i}") is None
    assert len(table._cache) <= 4096
    assert table.price_for("gpt-4o-x") == GPT4O
