"""Client-key budgets: ``api_keys[].preferences.credits`` (USD) spent since ``created_at``.

Contract:

- Spend is the sum of the recorded cost (``pricing``) of the key's requests since its
  ``credits_since`` (``created_at``, or 30 days before start-up when it is not set, as uni-api).
- :meth:`Credits.load` seeds each budgeted key's counter from the statistics database at start-up
  (the records are the source of truth); after that, every finished request adds its cost
  (:meth:`Credits.charge`, called with each request record). Without a database the count starts
  at zero when the gateway starts (a warning says so).
- The counters live in the limiter's store: in memory for one process, in Redis when
  ``REDIS_URL`` is set, so every worker and instance sees the same spend. Seeding never lowers
  a shared counter (another instance may already have counted requests not yet in the database).
- :meth:`Credits.check` refuses a key whose spend has reached its credits with
  :class:`~unigate.errors.InsufficientCredits` (402, ``insufficient_quota``). The cost of a request
  is known only when it ends, so requests already running when the budget runs out may overshoot
  it by their own cost; the next request is refused.
- Keys without ``credits`` cost nothing here: :meth:`check` returns at once without I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from unigate.config.compile import ClientKey
from unigate.errors import InsufficientCredits
from unigate.limits import Limiter

__all__ = ["Balance", "Credits", "SpendSince"]

log = logging.getLogger("unigate.credits")

SpendSince = Callable[[str, datetime], Awaitable[float]]
"""``spend_since(client key label, since) -> USD`` (``StatsStore.spend_since``)."""


@dataclass(frozen=True, slots=True)
class Balance:
    """One budgeted key as the admin endpoint shows it (the key only by its label)."""

    key: str
    credits: float
    created_at: datetime
    spent: float

    @property
    def balance(self) -> float:
        return self.credits - self.spent

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "credits": self.credits,
            "created_at": self.created_at.isoformat(),
            "spent": round(self.spent, 10),
            "balance": round(self.balance, 10),
            "enabled": self.spent < self.credits,
        }


class Credits:
    """Budgets of the configured keys; see the module docstring."""

    def __init__(self, keys: Iterable[ClientKey], limiter: Limiter) -> None:
        self._keys = {k.id: k for k in keys if k.credits is not None and k.credits_since is not None}
        self._limiter = limiter

    @property
    def budgeted(self) -> bool:
        return bool(self._keys)

    @staticmethod
    def _counter(key: ClientKey) -> str:
        assert key.credits_since is not None
        return f"credits:{key.id}:{int(key.credits_since.timestamp())}"

    async def load(self, spend_since: SpendSince | None) -> None:
        """Seed every budgeted key's counter from the statistics database (``None``: no database)."""
        if not self._keys:
            return
        if spend_since is None:
            log.warning("credits are configured but statistics are disabled: spend is counted from now on")
        for key in self._keys.values():
            assert key.credits_since is not None
            recorded = await spend_since(key.label, key.credits_since) if spend_since is not None else 0.0
            counter = self._counter(key)
            current = await self._limiter.get_float(counter)
            if current is None or recorded > current:
                await self._limiter.put_float(counter, recorded)

    async def spent(self, key: ClientKey) -> float:
        return await self._limiter.get_float(self._counter(key)) or 0.0

    async def check(self, key: ClientKey) -> None:
        """Raise ``InsufficientCredits`` when ``key`` has spent its credits."""
        if key.credits is None:
            return
        spent = await self.spent(key)
        if spent >= key.credits:
            raise InsufficientCredits(
                f"This API key has used its credits (${spent:.4f} of ${key.credits:g} since "
                f"{key.credits_since:%Y-%m-%d %H:%M} UTC). Ask the gateway's administrator for more."
            )

    async def charge(self, key_id: str, cost: float) -> None:
        """Add a finished request's cost to its key (no-op for keys without credits)."""
        key = self._keys.get(key_id)
        if key is not None and cost > 0:
            await self._limiter.incr_float(self._counter(key), cost)

    async def balances(self) -> list[Balance]:
        """Every budgeted key, in configuration order."""
        out = []
        for key in self._keys.values():
            assert key.credits is not None and key.credits_since is not None
            out.append(Balance(key.label, key.credits, key.credits_since, await self.spent(key)))
        return out
