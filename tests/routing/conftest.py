"""Shared builders for routing tests: a Runtime compiled from a small config text."""

from __future__ import annotations

from tests.clock import FakeClock
from unigate.config.compile import ClientKey, Runtime, compile_runtime
from unigate.config.load import load_text

__all__ = ["FakeClock", "key_of", "runtime_from"]


def runtime_from(text: str, env: dict[str, str] | None = None) -> Runtime:
    return compile_runtime(load_text(text, source="t.yaml", env=env or {}).config, env=env or {})


def key_of(runtime: Runtime, index: int = 0) -> ClientKey:
    return runtime.keys[index]
