"""The objects every handler reads, built once per Runtime and swapped whole on reload."""

from __future__ import annotations

from dataclasses import dataclass, field

from unigate.auth.keys import KeyStore
from unigate.config.compile import Runtime
from unigate.credits import Credits
from unigate.http.recording import Recorder
from unigate.limits import Limiter
from unigate.metrics import Metrics
from unigate.relay import Relay
from unigate.stats.store import StatsStore
from unigate.stats.writer import StatsWriter


@dataclass(frozen=True, slots=True)
class Gateway:
    runtime: Runtime
    keys: KeyStore
    relay: Relay
    recorder: Recorder = field(default_factory=Recorder)
    store: StatsStore | None = None
    writer: StatsWriter | None = None
    metrics: Metrics | None = None
    metrics_token: str | None = None
    limiter: Limiter = field(default_factory=Limiter.memory)
    credits: Credits | None = None
