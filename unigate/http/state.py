"""The objects every handler reads, built once per Runtime and swapped whole on reload."""

from __future__ import annotations

from dataclasses import dataclass

from unigate.auth.keys import KeyStore
from unigate.config.compile import Runtime
from unigate.relay import Relay


@dataclass(frozen=True, slots=True)
class Gateway:
    runtime: Runtime
    keys: KeyStore
    relay: Relay
