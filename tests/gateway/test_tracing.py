"""OpenTelemetry: one span per upstream attempt, with channel, model, outcome — and no key."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.fakes.openai_upstream import Fail, FakeOpenAI
from tests.gateway.harness import run_gateway

EXPORTER = InMemorySpanExporter()


def setup_module() -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)


def test_each_attempt_is_a_span_without_secrets() -> None:
    with FakeOpenAI(api_key="sk-up-trace-canary-1") as a, FakeOpenAI(api_key="sk-up-trace-canary-2") as b:
        text = f"""
providers:
  - {{provider: alpha, base_url: "{a.base_url}", api: sk-up-trace-canary-1, model: [gpt-4o]}}
  - {{provider: beta, base_url: "{b.base_url}", api: sk-up-trace-canary-2, model: [gpt-4o]}}
api_keys:
  - api: sk-client-trace-canary
"""
        a.script(Fail(503))
        with run_gateway(text) as gw:
            gw.client("sk-client-trace-canary").chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "t"}]
            )
    spans = [s for s in EXPORTER.get_finished_spans() if s.name == "unigate.upstream"]
    got = [
        (s.attributes["unigate.channel"], s.attributes["unigate.attempt"], s.attributes["unigate.outcome"])
        for s in spans
    ]
    assert got == [("alpha", 1, "UpstreamUnavailable"), ("beta", 2, "ok")]
    assert spans[0].attributes["http.response.status_code"] == 503
    dump = repr([dict(s.attributes or {}) for s in spans])
    assert "canary" not in dump
