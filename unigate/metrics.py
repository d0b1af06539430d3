"""Prometheus metrics fed from the same :class:`RequestRecord` the statistics store keeps.

Contract:

- Each :class:`Metrics` owns its own :class:`prometheus_client.CollectorRegistry` (never the
  global one), so several apps in one process do not collide and nothing leaks between tests.
- :meth:`Metrics.observe` is synchronous, cheap (a few µs) and never raises for any record. It
  updates plain in-process counters under one uncontended lock; a collector turns them into
  Prometheus families at scrape time (prometheus-client's own metric objects cost ~0.5 µs per
  increment, ten times what a record needs). Safe to call from any thread.
- **Bounded label sets.** Each label keeps at most a configured number of distinct values
  (models 100, keys 50, channels 50, error classes and outcomes 50 by default); later new values
  are reported as :data:`OVERFLOW` (``"other"``), and every value is cut to
  :data:`MAX_LABEL_LENGTH` characters, so a client sending random model names cannot grow memory.
  The first values seen keep their own series for the life of the instance. A missing value
  (no channel was tried, an unauthenticated request) is the empty string.
- Series appear on first use. Once a (channel, model) pair has been seen, all four token kinds
  are exposed (zeros included) and so is its cost per key, so ``rate()`` sees the first increment;
  the TTFT histogram appears with its first observation. Negative or NaN durations count as 0;
  negative token counts and non-finite costs count nothing.
- Label meanings: ``channel`` is the channel that served (the last one tried when all failed);
  ``model`` is the model the client asked for; ``key`` is the record's ``client_key`` — the key's
  label or fingerprint, never a key; ``status`` is the class of the status the client got
  (``"2xx"``, ``"4xx"``, ``"5xx"``, …; ``"other"`` outside 100–599).
- Gauges come from a callable the app passes in, called at scrape time: each ``name → value``
  becomes the gauge ``unigate_<name>`` (a name already starting ``unigate_`` is kept). Names
  that are not valid metric names or that clash with the metrics below are skipped, as are
  values that are not numbers; a callable that raises yields no gauges for that scrape and
  counts ``unigate_metrics_gauge_errors_total`` — a scrape never fails because of it.

Metrics (all prefixed ``unigate_``): ``requests_total{channel,model,key,status}``,
``errors_total{error_class}``, ``attempts_total{channel,outcome}``,
``request_latency_seconds{channel,model}`` and ``ttft_seconds{channel,model}`` (histograms),
``tokens_total{channel,model,kind}`` (kind: prompt, completion, cached, reasoning; cached is a
part of prompt and reasoning a part of completion, as providers report them),
``cost_usd_total{channel,model,key}``, ``metrics_gauge_errors_total``, plus the process
collector's ``process_*`` when enabled. No ``*_created`` series are exposed.
"""

from __future__ import annotations

import math
import re
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
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
_OWN_NAMES = frozenset(
    f"unigate_{name}{suffix}"
    for name in ("requests", "errors", "attempts", "tokens", "cost_usd", "metrics_gauge_errors")
    for suffix in ("", "_total", "_created")
) | frozenset(
    f"unigate_{name}{suffix}"
    for name in ("request_latency_seconds", "ttft_seconds")
    for suffix in ("", "_bucket", "_count", "_sum", "_created")
)
_STATUS_CLASSES = {code: f"{code // 100}xx" for code in range(100, 600)}


class LabelCap:
    """Admits at most ``limit`` distinct values of one label; the rest map to :data:`OVERFLOW`.

    The first ``limit`` distinct values seen win, for the life of the instance. Not locked on
    its own: :class:`Metrics` calls it under its lock.
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


class _Histogram:
    """Per-bucket (not cumulative) counts; the last bucket is +Inf."""

    __slots__ = ("counts", "total")

    def __init__(self, size: int) -> None:
        self.counts = [0] * size
        self.total = 0.0


class _ModelRow:
    """Everything labelled (channel, model)."""

    __slots__ = ("latency", "tokens", "ttft")

    def __init__(self, latency_size: int, ttft_size: int) -> None:
        self.latency = _Histogram(latency_size)
        self.ttft = _Histogram(ttft_size)
        self.tokens = [0, 0, 0, 0]  # in _TOKEN_KINDS order


class _Row:
    """Everything labelled (channel, model, key); ``model_row`` is shared by all keys."""

    __slots__ = ("cost", "model_row", "requests")

    def __init__(self, model_row: _ModelRow) -> None:
        self.model_row = model_row
        self.requests: dict[str, int] = {}  # status class → count
        self.cost = 0.0


def _seconds(ms: float) -> float:
    return ms / 1000.0 if ms >= 0 else 0.0  # NaN fails the comparison too


class Metrics:
    """The gateway's Prometheus metrics, on a registry of their own.

    ``gauges`` is called at every scrape and must be cheap and thread-safe (it runs on the
    scraping thread); ``max_*`` bound the distinct values of each label; bucket bounds are in
    seconds (+Inf is added when missing); ``process_metrics`` adds the standard ``process_*``
    collector (CPU, memory, open files) to this registry.
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
        self._model = LabelCap(max_models)
        self._key = LabelCap(max_keys)
        self._channel = LabelCap(max_channels)
        self._error_class = LabelCap(max_classes)
        self._outcome = LabelCap(max_classes)
        self._latency_bounds = _bounds(latency_buckets)
        self._ttft_bounds = _bounds(ttft_buckets)
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str, str], _Row] = {}
        self._model_rows: dict[tuple[str, str], _ModelRow] = {}
        self._errors: dict[str, int] = {}
        self._attempts: dict[tuple[str, str], int] = {}
        self._gauge_errors = 0
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Exposition(self, gauges))
        if process_metrics:
            ProcessCollector(registry=self.registry)

    def observe(self, record: RequestRecord) -> None:
        """Count one finished request (and its attempts). Never raises for a valid record."""
        failed = record.error_class is not None or not record.success
        with self._lock:
            channel = self._channel(record.channel)
            model = self._model(record.model)
            key = self._key(record.client_key)
            row = self._rows.get((channel, model, key))
            if row is None:
                row = self._new_row(channel, model, key)
            status = _STATUS_CLASSES.get(record.status, OVERFLOW)
            row.requests[status] = row.requests.get(status, 0) + 1
            if failed:
                error_class = self._error_class(record.error_class or "unknown")
                self._errors[error_class] = self._errors.get(error_class, 0) + 1
            for attempt in record.attempts:
                pair = (self._channel(attempt.channel), self._outcome(attempt.outcome))
                self._attempts[pair] = self._attempts.get(pair, 0) + 1
            model_row = row.model_row
            seconds = _seconds(record.latency_ms)
            histogram = model_row.latency
            histogram.counts[bisect_left(self._latency_bounds, seconds)] += 1
            histogram.total += seconds
            if record.ttft_ms is not None:
                seconds = _seconds(record.ttft_ms)
                histogram = model_row.ttft
                histogram.counts[bisect_left(self._ttft_bounds, seconds)] += 1
                histogram.total += seconds
            tokens = model_row.tokens
            if record.prompt_tokens > 0:
                tokens[0] += record.prompt_tokens
            if record.completion_tokens > 0:
                tokens[1] += record.completion_tokens
            if record.cached_tokens > 0:
                tokens[2] += record.cached_tokens
            if record.reasoning_tokens > 0:
                tokens[3] += record.reasoning_tokens
            if 0 < record.cost < math.inf:
                row.cost += record.cost

    def _new_row(self, channel: str, model: str, key: str) -> _Row:
        model_row = self._model_rows.get((channel, model))
        if model_row is None:
            size = len(self._latency_bounds), len(self._ttft_bounds)
            model_row = self._model_rows[(channel, model)] = _ModelRow(*size)
        row = self._rows[(channel, model, key)] = _Row(model_row)
        return row

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type, for ``GET /metrics``."""
        return generate_latest(self.registry), CONTENT_TYPE

    def _families(self, gauges: Callable[[], Mapping[str, float]] | None) -> Iterator[Metric]:
        """A consistent snapshot (taken under the lock) as metric families."""
        gauge_families = _read_gauges(gauges) if gauges is not None else []
        with self._lock:
            if gauge_families is None:
                self._gauge_errors += 1
            requests = [(labels, dict(row.requests), row.cost) for labels, row in self._rows.items()]
            per_model = [
                (labels, list(r.latency.counts), r.latency.total, list(r.ttft.counts), r.ttft.total, list(r.tokens))
                for labels, r in self._model_rows.items()
            ]
            errors = list(self._errors.items())
            attempts = list(self._attempts.items())
            gauge_errors = self._gauge_errors
        yield from gauge_families or ()
        family = CounterMetricFamily(
            "unigate_requests",
            "Client requests by the status class they got.",
            labels=("channel", "model", "key", "status"),
        )
        cost = CounterMetricFamily(
            "unigate_cost_usd", "Cost in US dollars at the configured model_price.", labels=("channel", "model", "key")
        )
        for labels, statuses, dollars in requests:
            for status, count in statuses.items():
                family.add_metric((*labels, status), count)
            cost.add_metric(labels, dollars)
        yield family
        family = CounterMetricFamily(
            "unigate_errors", "Failed client requests by error class.", labels=("error_class",)
        )
        for error_class, count in errors:
            family.add_metric((error_class,), count)
        yield family
        family = CounterMetricFamily(
            "unigate_attempts", "Upstream attempts by outcome ('ok' or an error class).", labels=("channel", "outcome")
        )
        for attempt_labels, count in attempts:
            family.add_metric(attempt_labels, count)
        yield family
        latency = HistogramMetricFamily(
            "unigate_request_latency_seconds",
            "Whole-request latency as the client saw it.",
            labels=("channel", "model"),
        )
        ttft = HistogramMetricFamily(
            "unigate_ttft_seconds",
            "Time from the request to the first token sent to the client.",
            labels=("channel", "model"),
        )
        tokens = CounterMetricFamily(
            "unigate_tokens",
            "Tokens by kind (cached is part of prompt, reasoning part of completion).",
            labels=("channel", "model", "kind"),
        )
        for pair, latency_counts, latency_sum, ttft_counts, ttft_sum, token_counts in per_model:
            latency.add_metric(pair, _cumulative(self._latency_bounds, latency_counts), latency_sum)
            if any(ttft_counts):
                ttft.add_metric(pair, _cumulative(self._ttft_bounds, ttft_counts), ttft_sum)
            for kind, count in zip(_TOKEN_KINDS, token_counts, strict=True):
                tokens.add_metric((*pair, kind), count)
        yield from (latency, ttft, tokens, cost)
        yield CounterMetricFamily(
            "unigate_metrics_gauge_errors", "Scrapes whose application gauges could not be read.", value=gauge_errors
        )


class _Exposition(Collector):
    def __init__(self, metrics: Metrics, gauges: Callable[[], Mapping[str, float]] | None) -> None:
        self._metrics = metrics
        self._gauges = gauges

    def describe(self) -> Iterable[Metric]:
        return ()  # gauge names are known only at scrape time; nothing to check at registration

    def collect(self) -> Iterable[Metric]:
        return list(self._metrics._families(self._gauges))


def _read_gauges(source: Callable[[], Mapping[str, float]]) -> list[Metric] | None:
    """The app's gauges as families; ``None`` when the callable raised."""
    try:
        values = dict(source())
    except Exception:  # a broken callable must not break the scrape
        return None
    families: list[Metric] = []
    for name, value in values.items():
        if not isinstance(name, str):
            continue
        full = name if name.startswith("unigate_") else f"unigate_{name}"
        if not _METRIC_NAME.match(full) or full in _OWN_NAMES:
            continue
        try:
            families.append(GaugeMetricFamily(full, f"{name} (reported by the application)", value=float(value)))
        except (TypeError, ValueError):
            continue
    return families


def _bounds(buckets: Iterable[float]) -> tuple[float, ...]:
    bounds = sorted({float(b) for b in buckets if not math.isnan(b)})
    if not bounds or bounds[-1] != math.inf:
        bounds.append(math.inf)
    return tuple(bounds)


def _cumulative(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    running = 0
    out: list[tuple[str, float]] = []
    for bound, count in zip(bounds, counts, strict=True):
        running += count
        out.append(("+Inf" if bound == math.inf else repr(bound), running))
    return out
