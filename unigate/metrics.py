"""Prometheus metrics fed from the same :class:`RequestRecord` the statistics store keeps.

Contract:

- Each :class:`Metrics` owns its own :class:`prometheus_client.CollectorRegistry` (never the
  global one), so several apps in one process do not collide and nothing leaks between tests.
- :meth:`Metrics.observe` is synchronous, cheap (a few µs: label children are cached, so no
  ``.labels()`` call after the first of each series) and never raises for any record.
- **Bounded label sets.** Each label keeps at most a configured number of distinct values
  (models 100, keys 50, channels 50, error classes and outcomes 50 by default); later new values
  are reported as :data:`OVERFLOW` (``"other"``), and every value is cut to
  :data:`MAX_LABEL_LENGTH` characters, so a client sending random model names cannot grow memory.
  A missing value (no channel was tried, an unauthenticated request) is the empty string.
- Label meanings: ``channel`` is the channel that served (the last one tried when all failed);
  ``model`` is the model the client asked for; ``key`` is the record's ``client_key`` — the key's
  label or fingerprint, never a key; ``status`` is the class of the status the client got
  (``"2xx"``, ``"4xx"``, ``"5xx"``, …; ``"other"`` outside 100–599).
- Gauges come from a callable the app passes in, called at scrape time: each ``name → value``
  becomes the gauge ``unigate_<name>``. Names that are not valid metric names are skipped; a
  callable that raises yields no gauges for that scrape and counts
  ``unigate_metrics_gauge_errors_total`` — a scrape never fails because of it.

Metrics (all prefixed ``unigate_``): ``requests_total{channel,model,key,status}``,
``errors_total{error_class}``, ``attempts_total{channel,outcome}``,
``request_latency_seconds{channel,model}`` and ``ttft_seconds{channel,model}`` (histograms),
``tokens_total{channel,model,kind}`` (kind: prompt, completion, cached, reasoning; cached is a
part of prompt and reasoning a part of completion, as providers report them),
``cost_usd_total{channel,model,key}``, plus the process collector's ``process_*`` when enabled.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from unigate.stats.records import RequestRecord

__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS", "MAX_LABEL_LENGTH", "OVERFLOW", "TTFT_BUCKETS", "LabelCap", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Prometheus text format 0.0.4, which every Prometheus version parses. ``generate_latest`` with
its default escaping writes exactly that for our (all-ASCII) metric names; prometheus-client's
own ``CONTENT_TYPE_LATEST`` moved to ``version=1.0.0`` in 0.2x, which older scrapers reject."""
OVERFLOW = "other"
"""The label value that stands for every value past a label's cap."""
MAX_LABEL_LENGTH = 120
"""Label values are cut to this many characters."""

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, math.inf)
"""Whole-request latency: LLM answers take from a fraction of a second to minutes."""
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, math.inf)
"""Time to first token: finer below a few seconds, where interactive use cares."""

_TOKEN_KINDS = ("prompt", "completion", "cached", "reasoning")
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_STATUS_CLASSES = {code: f"{code // 100}xx" for code in range(100, 600)}


class LabelCap:
    """Admits at most ``limit`` distinct values of one label; the rest map to :data:`OVERFLOW`.

    The first ``limit`` distinct values seen win, for the life of the instance. Lock-free: under
    free-threaded concurrency the set may overshoot ``limit`` by the number of racing threads,
    never more.
    """

    __slots__ = ("limit", "seen")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a label cap must admit at least one value")
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, value: str | None) -> str:
        if value is None:
            return ""
        if value in self.seen:
            return value
        value = value[:MAX_LABEL_LENGTH]
        if value in self.seen:
            return value
        if len(self.seen) >= self.limit:
            return OVERFLOW
        self.seen.add(value)
        return value


class _Gauges(Collector):
    """Renders the app's gauge callable at scrape time."""

    def __init__(self, source: Callable[[], Mapping[str, float]], errors: Counter) -> None:
        self._source = source
        self._errors = errors

    def describe(self) -> Iterable[Metric]:
        return ()  # names are known only at scrape time; nothing to check at registration

    def collect(self) -> Iterable[Metric]:
        try:
            values = dict(self._source())
        except Exception:  # a broken callable must not break the scrape
            self._errors.inc()
            return []
        families = []
        for name, value in values.items():
            if not isinstance(name, str):
                continue
            full = name if name.startswith("unigate_") else f"unigate_{name}"
            if not _METRIC_NAME.match(full):
                continue
            try:
                families.append(GaugeMetricFamily(full, f"{name} (reported by the application)", value=float(value)))
            except (TypeError, ValueError):
                continue
        return families


class Metrics:
    """The gateway's Prometheus metrics, on a registry of their own.

    ``gauges`` is called at every scrape and must be cheap and thread-safe (it runs on the
    scraping thread); ``max_*`` bound the distinct values of each label; ``process_metrics``
    adds the standard ``process_*`` collector (CPU, memory, open files) to this registry.
    """

    def __init__(
        self,
        *,
        gauges: Callable[[], Mapping[str, float]] | None = None,
        max_models: int = 100,
        max_keys: int = 50,
        max_channels: int = 50,
        max_classes: int = 50,
        latency_buckets: Iterable[float] = LATENCY_BUCKETS,
        ttft_buckets: Iterable[float] = TTFT_BUCKETS,
        process_metrics: bool = True,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._model = LabelCap(max_models)
        self._key = LabelCap(max_keys)
        self._channel = LabelCap(max_channels)
        self._error_class = LabelCap(max_classes)
        self._outcome = LabelCap(max_classes)
        r = self.registry
        self.requests = Counter(
            "unigate_requests", "Client requests by the status class they got.",
            ("channel", "model", "key", "status"), registry=r,
        )  # fmt: skip
        self.errors = Counter("unigate_errors", "Failed client requests by error class.", ("error_class",), registry=r)
        self.attempts = Counter(
            "unigate_attempts", "Upstream attempts by outcome ('ok' or an error class).",
            ("channel", "outcome"), registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "unigate_request_latency_seconds", "Whole-request latency as the client saw it.",
            ("channel", "model"), buckets=tuple(latency_buckets), registry=r,
        )  # fmt: skip
        self.ttft = Histogram(
            "unigate_ttft_seconds", "Time from the request to the first token sent to the client.",
            ("channel", "model"), buckets=tuple(ttft_buckets), registry=r,
        )  # fmt: skip
        self.tokens = Counter(
            "unigate_tokens", "Tokens by kind (cached is part of prompt, reasoning part of completion).",
            ("channel", "model", "kind"), registry=r,
        )  # fmt: skip
        self.cost = Counter(
            "unigate_cost_usd", "Cost in US dollars at the configured model_price.",
            ("channel", "model", "key"), registry=r,
        )  # fmt: skip
        # label values → child, so the hot path skips prometheus_client's locked .labels() lookup
        self._children: dict[tuple[Any, ...], Any] = {}
        # registered after the gauges, so a scrape shows the error its own gauge read caused
        gauge_errors = Counter(
            "unigate_metrics_gauge_errors", "Scrapes whose application gauges could not be read.", registry=None
        )
        if gauges is not None:
            r.register(_Gauges(gauges, gauge_errors))
        r.register(gauge_errors)
        if process_metrics:
            ProcessCollector(registry=r)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, record: RequestRecord) -> None:
        """Count one finished request (and its attempts). Never raises for a valid record."""
        channel = self._channel(record.channel)
        model = self._model(record.model)
        key = self._key(record.client_key)
        status = _STATUS_CLASSES.get(record.status, OVERFLOW)
        child = self._child
        child(self.requests, channel, model, key, status).inc()
        if record.error_class is not None or not record.success:
            child(self.errors, self._error_class(record.error_class or "unknown")).inc()
        for attempt in record.attempts:
            child(self.attempts, self._channel(attempt.channel), self._outcome(attempt.outcome)).inc()
        child(self.latency, channel, model).observe(max(record.latency_ms, 0.0) / 1000.0)
        if record.ttft_ms is not None:
            child(self.ttft, channel, model).observe(max(record.ttft_ms, 0.0) / 1000.0)
        counts = (record.prompt_tokens, record.completion_tokens, record.cached_tokens, record.reasoning_tokens)
        for kind, count in zip(_TOKEN_KINDS, counts, strict=True):
            if count > 0:
                child(self.tokens, channel, model, kind).inc(count)
        if record.cost > 0 and math.isfinite(record.cost):
            child(self.cost, channel, model, key).inc(record.cost)

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type, for ``GET /metrics``."""
        return generate_latest(self.registry), CONTENT_TYPE
