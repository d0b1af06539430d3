"""Cooldowns of channels and upstream keys, on an injected clock.

A **channel** here is (provider name, upstream model), as in uni-api HEAD. After a failure
that the retry table blames on the channel, it is skipped for its cooldown period
(``providers[].preferences.cooldown_period``, else global ``preferences.cooldown_period``,
default 300 s; 0 disables). Repeated failures grow the period: the n-th consecutive failure
cools for ``period × 2^(n-1)``, capped at ``MAX_GROWTH × period``. A success resets the count.

An **upstream key** is cooled after a 429 (for the provider's ``Retry-After``, else the
provider's ``api_key_cooldown_period``; capped at ``MAX_KEY_COOLDOWN``) and after a 401/403
(``api_key_cooldown_period``, at least ``AUTH_COOLDOWN``: a revoked key should stay out).

Recovery is automatic: an entry whose time has passed is simply ignored. Nothing here awaits,
so reads and writes are atomic on the event loop.

Sharing (``unigate.shared_state``): every local change is reported to ``listener`` as a
:class:`Change` (seconds *left*, so clocks need not agree); changes from other processes come back
through :meth:`Health.apply`, which never calls the listener (no echo).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

MAX_GROWTH = 8
MAX_KEY_COOLDOWN = 3600.0
AUTH_COOLDOWN = 600.0


@dataclass(slots=True)
class _Cooling:
    until: float
    failures: int
    failed_at: float


@dataclass(frozen=True, slots=True)
class Change:
    """One change of health state. ``kind``: ``channel`` (cooling; ``name`` is the upstream model),
    ``recovered`` (a channel succeeded), ``key`` (``name`` is the upstream key itself — a listener
    that sends changes elsewhere must replace it by its fingerprint). ``seconds`` left to cool."""

    kind: Literal["channel", "recovered", "key"]
    channel: str
    name: str
    seconds: float = 0.0
    failures: int = 0


class Health:
    """In-process health state. ``clock`` returns seconds (monotonic)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._channels: dict[tuple[str, str], _Cooling] = {}
        self._keys: dict[tuple[str, str], float] = {}
        self.listener: Callable[[Change], None] | None = None

    def _tell(self, change: Change) -> None:
        if self.listener is not None:
            self.listener(change)

    def apply(self, change: Change) -> None:
        """Apply a change made by another process (never reported back to the listener)."""
        now = self.clock()
        if change.kind == "recovered":
            self._channels.pop((change.channel, change.name), None)
        elif change.kind == "channel":
            until = now + min(change.seconds, MAX_KEY_COOLDOWN * MAX_GROWTH)
            entry = self._channels.get((change.channel, change.name))
            if entry is None or until > entry.until:
                self._channels[(change.channel, change.name)] = _Cooling(until, change.failures, now)
        elif change.seconds > 0:
            until = now + min(change.seconds, MAX_KEY_COOLDOWN)
            if until > self._keys.get((change.channel, change.name), 0.0):
                self._keys[(change.channel, change.name)] = until

    # -- channels ---------------------------------------------------------------------------

    def channel_available(self, channel: str, model: str) -> bool:
        entry = self._channels.get((channel, model))
        return entry is None or entry.until <= self.clock()

    def channel_until(self, channel: str, model: str) -> float:
        """When the channel recovers (0 when it is not cooling)."""
        entry = self._channels.get((channel, model))
        return entry.until if entry else 0.0

    def channel_failed(self, channel: str, model: str, period: float) -> float:
        """Record a failure; returns the cooldown applied (0 when disabled)."""
        if period <= 0:
            return 0.0
        now = self.clock()
        entry = self._channels.get((channel, model))
        failures = 1 if entry is None else entry.failures + 1
        applied = min(period * float(2 ** (failures - 1)), period * MAX_GROWTH)
        self._channels[(channel, model)] = _Cooling(now + applied, failures, now)
        self._tell(Change("channel", channel, model, applied, failures))
        return applied

    def cool_channel(self, channel: str, model: str, seconds: float) -> None:
        """Skip a channel for ``seconds`` (capped like a key), without growing its failure count:
        a rate limit on a channel whose only credential is the channel's own."""
        if seconds <= 0:
            return
        now = self.clock()
        until = now + min(seconds, MAX_KEY_COOLDOWN)
        entry = self._channels.get((channel, model))
        if entry is None:
            self._channels[(channel, model)] = _Cooling(until, 0, now)
        elif until > entry.until:
            entry.until = until
        else:
            return
        self._tell(Change("channel", channel, model, until - now, entry.failures if entry else 0))

    def channel_succeeded(self, channel: str, model: str) -> None:
        if self._channels.pop((channel, model), None) is not None:
            self._tell(Change("recovered", channel, model))

    # -- upstream keys ----------------------------------------------------------------------

    def key_available(self, channel: str, key: str) -> bool:
        until = self._keys.get((channel, key))
        return until is None or until <= self.clock()

    def key_until(self, channel: str, key: str) -> float:
        return self._keys.get((channel, key), 0.0)

    def cool_key(self, channel: str, key: str, seconds: float) -> float:
        """Cool one upstream key for ``seconds`` (capped); returns the period applied."""
        if seconds <= 0:
            return 0.0
        applied = min(seconds, MAX_KEY_COOLDOWN)
        until = self.clock() + applied
        if until > self._keys.get((channel, key), 0.0):
            self._keys[(channel, key)] = until
            self._tell(Change("key", channel, key, applied))
        return applied

    def snapshot(self) -> dict[str, list[dict[str, object]]]:
        """Current cooldowns, for the dashboard and admin endpoints (no key material)."""
        now = self.clock()
        return {
            "channels": [
                {"channel": c, "model": m, "seconds_left": round(e.until - now, 3), "failures": e.failures}
                for (c, m), e in self._channels.items()
                if e.until > now
            ],
        }
