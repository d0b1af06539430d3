"""Optional OpenTelemetry spans around each upstream attempt (the ``otel`` extra).

When ``opentelemetry-api`` is installed and the process has a real tracer provider (set up by
the operator: ``opentelemetry-instrument``, or an SDK configured in code), every attempt runs
in a ``unigate.upstream`` span carrying the channel, upstream model, attempt number, status and
outcome — never a key. Otherwise ``attempt_span`` is a no-op costing one attribute lookup, so
the pass-through path pays nothing for tracing it does not use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_trace: Any
try:
    from opentelemetry import trace as _trace
except ImportError:  # the extra is not installed
    _trace = None


class _NoSpan:
    def set_attribute(self, key: str, value: Any) -> None:
        pass


_NO_SPAN = _NoSpan()


def tracer() -> Any:
    """The tracer to use, or None: decided once per Relay (at start-up), since looking the
    provider up on every attempt showed in profiles."""
    if _trace is None:
        return None
    provider = _trace.get_tracer_provider()
    if type(provider).__name__ in ("ProxyTracerProvider", "NoOpTracerProvider"):
        return None
    return provider.get_tracer("unigate")


@contextlib.contextmanager
def attempt_span(tracer: Any, channel: str, upstream_model: str, attempt: int) -> Iterator[Any]:
    """A span for one upstream attempt (``tracer`` from :func:`tracer`); yields an object with
    ``set_attribute``."""
    if tracer is None:
        yield _NO_SPAN
        return
    with tracer.start_as_current_span(
        "unigate.upstream",
        kind=_trace.SpanKind.CLIENT if _trace else None,
        attributes={
            "unigate.channel": channel,
            "unigate.upstream_model": upstream_model,
            "unigate.attempt": attempt,
        },
    ) as span:
        yield span
