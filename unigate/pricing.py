"""Request cost from ``preferences.model_price`` (uni-api-compat.md §2.5).

Contract:

- Prices are USD per **million** tokens, ``Price(input, output)`` as the config parses them.
- Lookup (:meth:`PriceTable.price_for`): the exact key, else the **longest** key that is a prefix
  of the model name (case-sensitive), tried for the requested alias first and then for the
  upstream model name; only when neither name matches does ``default`` apply; with no
  ``default`` the model is **unpriced** (``None``).
- unigate does **not** apply uni-api's hidden code default (``0.3,1`` per 1M tokens when nothing
  matches and no ``default`` is configured): an unpriced model costs 0 and callers report it as
  unpriced rather than inventing a price the operator never set.
- Cost (:func:`cost`) = (prompt × input + completion × output) / 1e6. ``prompt_tokens`` already
  includes cached tokens (every dialect maps usage that way), so cached tokens are priced at the
  input rate, with no discount, until the config grows a cache-read price. Likewise reasoning
  tokens are part of ``completion_tokens`` and priced at the output rate.
- Everything here is pure: no I/O, no clock, no logging.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from unigate.config.schema import GlobalPreferences
from unigate.config.values import Price

__all__ = ["DEFAULT_KEY", "PriceTable", "UsageLike", "cost"]

DEFAULT_KEY = "default"
"""The ``model_price`` key that prices every model no other key matches."""


class UsageLike(Protocol):
    """Anything with token counts: :class:`unigate.ir.Usage`,
    :class:`unigate.stats.records.RequestRecord`."""

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def completion_tokens(self) -> int: ...

    @property
    def cached_tokens(self) -> int: ...


def cost(price: Price | None, usage: UsageLike) -> float:
    """USD for ``usage`` at ``price``; 0.0 when ``price`` is ``None`` (unpriced). Negative
    counts (a provider bug) count as 0. Cached tokens are inside ``prompt_tokens`` and priced
    as input (see the module docstring)."""
    if price is None:
        return 0.0
    prompt = max(usage.prompt_tokens, 0)
    completion = max(usage.completion_tokens, 0)
    return (prompt * price.input + completion * price.output) / 1e6


class PriceTable:
    """``model_price`` compiled for lookup. Its prices never change after construction (only
    an internal, bounded lookup memo does), so one table is safe to share between tasks.

    ``prices`` maps a model name or prefix to its price; a ``"default"`` key in it (or the
    ``default`` argument, which wins) prices models nothing else matches.
    """

    __slots__ = ("_cache", "_default", "_exact", "_prefixes")

    def __init__(self, prices: Mapping[str, Price], default: Price | None = None) -> None:
        exact = {key: price for key, price in prices.items() if key != DEFAULT_KEY}
        self._exact = exact
        # Longest first, so the first prefix that matches is the longest one.
        self._prefixes = tuple(sorted(exact.items(), key=lambda item: len(item[0]), reverse=True))
        self._default = default if default is not None else prices.get(DEFAULT_KEY)
        # name → price (or None): a bounded memo, so repeated lookups skip the prefix scan.
        self._cache: dict[str, Price | None] = {}

    @classmethod
    def from_preferences(cls, preferences: GlobalPreferences) -> PriceTable:
        """The table for a config's top-level ``preferences``."""
        return cls(preferences.model_price)

    @property
    def default(self) -> Price | None:
        return self._default

    def __bool__(self) -> bool:
        """False when nothing is priced at all (no keys and no default)."""
        return bool(self._exact) or self._default is not None

    def match(self, name: str) -> Price | None:
        """The price of ``name`` by exact key, else by the longest matching prefix; ``None``
        when no key matches (``default`` is not consulted here)."""
        try:
            return self._cache[name]
        except KeyError:
            pass
        price = self._exact.get(name)
        if price is None:
            price = next((p for key, p in self._prefixes if name.startswith(key)), None)
        if len(self._cache) < 4096:  # client-chosen names must not grow memory without bound
            self._cache[name] = price
        return price

    def price_for(self, model: str | None, upstream_model: str | None = None) -> Price | None:
        """The price for a request: ``model`` (the alias the client asked for) matched first,
        then ``upstream_model`` (the name sent to the provider), then ``default``; ``None``
        when the model is unpriced."""
        for name in (model, upstream_model):
            if name:
                price = self.match(name)
                if price is not None:
                    return price
        return self._default

    def cost(self, model: str | None, upstream_model: str | None, usage: UsageLike) -> float:
        """USD for ``usage`` of ``model`` served as ``upstream_model`` (see :meth:`price_for`);
        0.0 when unpriced. The argument order matches ``unigate.http.recording.CostFn``, so
        ``Recorder(cost=table.cost)`` needs no adapter."""
        return cost(self.price_for(model, upstream_model), usage)
