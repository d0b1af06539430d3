"""Prometheus metrics: exposition parsed back with exact values, bounded labels, app gauges."""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from unigate.metrics import MAX_LABEL_LENGTH, OVERFLOW, LabelCap, Metrics
from unigate.stats.records import AttemptRecord, RequestRecord

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def attempt(channel: str, outcome: str = "ok", status: int = 200) -> AttemptRecord:
    return AttemptRecord(
        channel=channel, upstream_model="up", key_fingerprint="key-01234567", outcome=outcome, status=status,
        latency_ms=5.0,
    )  # fmt: skip


def record(n: int = 0, **kw: Any) -> RequestRecord:
    values: dict[str, Any] = {
        "endpoint": "POST /v1/chat/completions",
        "client_key": "alice",
        "model": "gpt-4o",
        "channel": "openai",
        "status": 200,
        "success": True,
        "latency_ms": 1500.0,
        "attempts": (attempt("openai"),),
    }
    values.update(kw)
    return RequestRecord(request_id=f"req-{n}", timestamp=NOW, **values)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(metrics: Metrics) -> Samples:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def test_exact_values_after_a_few_records() -> None:
    m = Metrics(process_metrics=False)
    m.observe(
        record(
            1, prompt_tokens=1000, completion_tokens=200, cached_tokens=600, reasoning_tokens=50, cost=0.0045,
            ttft_ms=300.0, latency_ms=1500.0,
        )
    )  # fmt: skip
    m.observe(record(2, prompt_tokens=10, completion_tokens=5, cost=0.0005, ttft_ms=800.0, latency_ms=4000.0))
    m.observe(
        record(
            3, channel="azure", status=502, success=False, error_class="UpstreamUnavailable", latency_ms=30_000.0,
            attempts=(attempt("openai", "UpstreamRateLimited", 429), attempt("azure", "UpstreamUnavailable", 503)),
        )
    )  # fmt: skip
    m.observe(record(4, model="claude", client_key="bob", channel=None, status=429, success=False,
                     error_class="RateLimited", attempts=(), latency_ms=1.0))  # fmt: skip
    s = scrape(m)

    assert series(s, "unigate_requests_total") == {
        frozenset({("channel", "openai"), ("model", "gpt-4o"), ("key", "alice"), ("status", "2xx")}): 2.0,
        frozenset({("channel", "azure"), ("model", "gpt-4o"), ("key", "alice"), ("status", "5xx")}): 1.0,
        frozenset({("channel", ""), ("model", "claude"), ("key", "bob"), ("status", "4xx")}): 1.0,
    }
    assert series(s, "unigate_errors_total") == {
        frozenset({("error_class", "UpstreamUnavailable")}): 1.0,
        frozenset({("error_class", "RateLimited")}): 1.0,
    }
    assert series(s, "unigate_attempts_total") == {
        frozenset({("channel", "openai"), ("outcome", "ok")}): 2.0,
        frozenset({("channel", "openai"), ("outcome", "UpstreamRateLimited")}): 1.0,
        frozenset({("channel", "azure"), ("outcome", "UpstreamUnavailable")}): 1.0,
    }
    tokens = series(s, "unigate_tokens_total")
    assert {labels: v for labels, v in tokens.items() if v} == {
        frozenset({("channel", "openai"), ("model", "gpt-4o"), ("kind", "prompt")}): 1010.0,
        frozenset({("channel", "openai"), ("model", "gpt-4o"), ("kind", "completion")}): 205.0,
        frozenset({("channel", "openai"), ("model", "gpt-4o"), ("kind", "cached")}): 600.0,
        frozenset({("channel", "openai"), ("model", "gpt-4o"), ("kind", "reasoning")}): 50.0,
    }
    # every (channel, model) seen exposes all four kinds, zeros included, so rate() sees the first increment
    assert len(tokens) == 3 * 4
    assert value(s, "unigate_tokens_total", channel="", model="claude", kind="prompt") == 0
    assert series(s, "unigate_cost_usd_total") == {
        frozenset({("channel", "openai"), ("model", "gpt-4o"), ("key", "alice")}): pytest.approx(0.005),
        frozenset({("channel", "azure"), ("model", "gpt-4o"), ("key", "alice")}): 0.0,
        frozenset({("channel", ""), ("model", "claude"), ("key", "bob")}): 0.0,
    }
    assert not any(name.endswith("_created") for name, _ in s)

    openai = {"channel": "openai", "model": "gpt-4o"}
    assert value(s, "unigate_request_latency_seconds_count", **openai) == 2
    assert value(s, "unigate_request_latency_seconds_sum", **openai) == pytest.approx(5.5)
    assert value(s, "unigate_request_latency_seconds_bucket", **openai, le="1.0") == 0
    assert value(s, "unigate_request_latency_seconds_bucket", **openai, le="2.5") == 1
    assert value(s, "unigate_request_latency_seconds_bucket", **openai, le="5.0") == 2
    assert value(s, "unigate_request_latency_seconds_bucket", **openai, le="300.0") == 2
    assert value(s, "unigate_request_latency_seconds_bucket", **openai, le="+Inf") == 2
    azure = {"channel": "azure", "model": "gpt-4o"}
    assert value(s, "unigate_request_latency_seconds_bucket", **azure, le="20.0") == 0
    assert value(s, "unigate_request_latency_seconds_bucket", **azure, le="30.0") == 1

    assert value(s, "unigate_ttft_seconds_count", **openai) == 2
    assert value(s, "unigate_ttft_seconds_sum", **openai) == pytest.approx(1.1)
    assert value(s, "unigate_ttft_seconds_bucket", **openai, le="0.5") == 1
    assert value(s, "unigate_ttft_seconds_bucket", **openai, le="1.0") == 2
    assert value(s, "unigate_ttft_seconds_count", **azure) is None  # no TTFT observed there
    assert value(s, "unigate_metrics_gauge_errors_total") == 0


def test_latency_buckets_reach_300_seconds() -> None:
    m = Metrics(process_metrics=False)
    m.observe(record(ttft_ms=299_000.0, latency_ms=299_000.0))
    s = scrape(m)
    labels = {"channel": "openai", "model": "gpt-4o"}
    for name in ("unigate_request_latency_seconds_bucket", "unigate_ttft_seconds_bucket"):
        assert value(s, name, **labels, le="120.0") == 0
        assert value(s, name, **labels, le="300.0") == 1


def test_success_after_retry_is_not_an_error_but_a_committed_failure_is() -> None:
    m = Metrics(process_metrics=False)
    m.observe(record(1, attempts=(attempt("a", "UpstreamTimeout", 0), attempt("openai"))))
    m.observe(record(2, status=200, success=False, error_class="StreamInterrupted"))  # broke after first byte
    m.observe(record(3, status=0, success=False))  # no class known, odd status
    s = scrape(m)
    assert series(s, "unigate_errors_total") == {
        frozenset({("error_class", "StreamInterrupted")}): 1.0,
        frozenset({("error_class", "unknown")}): 1.0,
    }
    assert value(s, "unigate_requests_total", channel="openai", model="gpt-4o", key="alice", status="other") == 1
    assert value(s, "unigate_attempts_total", channel="a", outcome="UpstreamTimeout") == 1


def test_label_cap_bounds_random_model_names() -> None:
    m = Metrics(max_models=5, max_keys=2, max_channels=3, process_metrics=False)
    for i in range(1000):
        m.observe(record(i, model=f"random-{i}", client_key=f"key-{i % 7}", channel=f"ch-{i % 11}",
                         attempts=(attempt(f"ch-{i % 11}"),), prompt_tokens=1, cost=0.001))  # fmt: skip
    s = scrape(m)
    requests = series(s, "unigate_requests_total")
    models = {dict(labels)["model"] for labels in requests}
    keys = {dict(labels)["key"] for labels in requests}
    channels = {dict(labels)["channel"] for labels in requests}
    assert models == {"random-0", "random-1", "random-2", "random-3", "random-4", OVERFLOW}
    assert keys == {"key-0", "key-1", OVERFLOW}
    assert channels == {"ch-0", "ch-1", "ch-2", OVERFLOW}
    assert sum(requests.values()) == 1000
    assert sum(series(s, "unigate_attempts_total").values()) == 1000
    assert len({dict(labels)["channel"] for labels in series(s, "unigate_attempts_total")}) == 4
    assert sum(series(s, "unigate_tokens_total").values()) == 1000
    assert sum(series(s, "unigate_cost_usd_total").values()) == pytest.approx(1.0)
    # the memory bound: rows are at most the product of the capped label sets (+ overflow)
    assert len(requests) <= 6 * 3 * 4
    assert len(m._rows) <= 6 * 3 * 4 and len(m._model_rows) <= 6 * 4


def test_label_cap_bounds_error_classes_and_outcomes() -> None:
    m = Metrics(max_classes=2, process_metrics=False)
    for i in range(50):
        m.observe(record(i, success=False, status=500, error_class=f"E{i}", attempts=(attempt("openai", f"O{i}"),)))
    s = scrape(m)
    assert {dict(k)["error_class"] for k in series(s, "unigate_errors_total")} == {"E0", "E1", OVERFLOW}
    assert {dict(k)["outcome"] for k in series(s, "unigate_attempts_total")} == {"O0", "O1", OVERFLOW}


def test_label_cap_unit() -> None:
    cap = LabelCap(2)
    assert [cap("a"), cap("b"), cap("c"), cap("a"), cap(None)] == ["a", "b", OVERFLOW, "a", ""]
    long = LabelCap(1)
    assert long("x" * 10_000) == "x" * MAX_LABEL_LENGTH
    assert long("x" * 20_000) == "x" * MAX_LABEL_LENGTH  # same prefix, same value
    with pytest.raises(ValueError):
        LabelCap(0)


def test_instances_do_not_share_a_registry() -> None:
    a, b = Metrics(process_metrics=False), Metrics(process_metrics=False)
    a.observe(record())
    assert value(scrape(a), "unigate_requests_total", channel="openai", model="gpt-4o", key="alice", status="2xx") == 1
    assert series(scrape(b), "unigate_requests_total") == {}


def test_gauges_rendered_at_scrape_time() -> None:
    state: dict[str, float] = {"stats_queue_depth": 3, "stats_dropped_records": 0, "channels_cooling": 1}

    def gauges() -> Mapping[str, float]:
        return state

    m = Metrics(gauges=gauges, process_metrics=False)
    s = scrape(m)
    assert value(s, "unigate_stats_queue_depth") == 3
    assert value(s, "unigate_stats_dropped_records") == 0
    assert value(s, "unigate_channels_cooling") == 1
    state["stats_queue_depth"] = 7
    state["unigate_already_prefixed"] = 2.5
    s = scrape(m)
    assert value(s, "unigate_stats_queue_depth") == 7
    assert value(s, "unigate_already_prefixed") == 2.5


def test_bad_gauges_never_break_a_scrape() -> None:
    def bad_values() -> Mapping[str, Any]:
        return {"bad name!": 1, "not_a_number": "x", "ok": 1, "nan": math.nan}

    s = scrape(Metrics(gauges=bad_values, process_metrics=False))
    assert value(s, "unigate_ok") == 1
    assert value(s, "unigate_nan") is not None and math.isnan(value(s, "unigate_nan") or 0)
    assert not any(name.startswith(("unigate_bad", "unigate_not_a_number")) for name, _ in s)

    def broken() -> Mapping[str, float]:
        raise RuntimeError("queue gone")

    m = Metrics(gauges=broken, process_metrics=False)
    m.observe(record())
    s = scrape(m)
    assert value(s, "unigate_metrics_gauge_errors_total") == 1
    assert value(s, "unigate_requests_total", channel="openai", model="gpt-4o", key="alice", status="2xx") == 1


def test_process_metrics_on_own_registry_never_the_global_one() -> None:
    m = Metrics()
    m.observe(record())
    body, _ = m.render()
    names = {family.name for family in text_string_to_metric_families(body.decode())}
    assert "unigate_requests" in names
    if sys.platform.startswith("linux"):
        assert "process_cpu_seconds" in names
    assert b"unigate_" not in generate_latest(REGISTRY)


def test_odd_values_do_not_raise() -> None:
    m = Metrics(process_metrics=False)
    m.observe(record(latency_ms=-5.0, ttft_ms=math.nan, cost=math.nan, prompt_tokens=-3))
    m.observe(record(model=None, client_key=None, channel=None, attempts=(), cost=math.inf))
    s = scrape(m)
    assert value(s, "unigate_request_latency_seconds_bucket", channel="openai", model="gpt-4o", le="0.1") == 1
    assert set(series(s, "unigate_cost_usd_total").values()) == {0.0}
    assert set(series(s, "unigate_tokens_total").values()) == {0.0}
    assert value(s, "unigate_ttft_seconds_bucket", channel="openai", model="gpt-4o", le="0.05") == 1
    assert value(s, "unigate_requests_total", channel="", model="", key="", status="2xx") == 1


def test_gauge_names_cannot_shadow_our_metrics() -> None:
    s = scrape(Metrics(gauges=lambda: {"requests_total": 99, "unigate_ttft_seconds_sum": 1, "fine": 2}))
    assert value(s, "unigate_fine") == 2
    assert value(s, "unigate_requests_total") is None
    assert value(s, "unigate_ttft_seconds_sum") is None


def test_custom_buckets() -> None:
    m = Metrics(latency_buckets=(2, 1, 1), ttft_buckets=(), process_metrics=False)
    m.observe(record(latency_ms=1500.0, ttft_ms=10.0))
    s = scrape(m)
    labels = {"channel": "openai", "model": "gpt-4o"}
    assert {dict(k)["le"]: v for k, v in series(s, "unigate_request_latency_seconds_bucket").items()} == {
        "1.0": 0,
        "2.0": 1,
        "+Inf": 1,
    }
    assert value(s, "unigate_ttft_seconds_bucket", **labels, le="+Inf") == 1


def test_observe_from_many_threads_loses_nothing() -> None:
    m = Metrics(process_metrics=False)
    records = [record(i, model=f"m{i % 3}", prompt_tokens=2, cost=0.25) for i in range(300)]

    def work() -> None:
        for r in records:
            m.observe(r)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    s = scrape(m)
    assert sum(series(s, "unigate_requests_total").values()) == 2400
    assert sum(series(s, "unigate_tokens_total").values()) == 4800
    assert sum(series(s, "unigate_cost_usd_total").values()) == 600
    assert sum(v for (n, k), v in s.items() if n == "unigate_request_latency_seconds_count") == 2400
