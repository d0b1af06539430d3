"""Channel scheduling (per client key) and upstream-key rotation (per channel).

Channel algorithms (``api_keys[].preferences.SCHEDULING_ALGORITHM``):

- ``fixed_priority`` (default): the key's rule order, always.
- ``round_robin``: the same order rotated by one more step on every request.
- ``weighted_round_robin``: the first choice follows a smooth weighted cycle (nginx's
  algorithm): over any ``sum(weights)`` consecutive requests each weighted channel is first
  exactly ``weight`` times. The other channels follow in rule order, as fallbacks.
- ``lottery``: the first choice is drawn at random with probability ``weight / sum``.
- ``random``: a uniform shuffle per request.

Weights come from ``{rule: N}`` entries. Unlike uni-api, channels without a weight are never
dropped: when any candidate is weighted, the unweighted ones come after all weighted ones, in
rule order, and serve only when the weighted ones fail or cool down. ``smart_round_robin`` is
accepted and behaves as ``weighted_round_robin``.

State (cursors, smooth-WRR current weights) is kept per (client key, requested model), so one
key's traffic never shifts another's order. ``order`` never awaits, so on one event loop it is
exact under any concurrency. Randomness comes from an injected ``random.Random``.

Shared cursors: ``order(..., tick=n)`` orders for the n-th request of the scope counted elsewhere
(a Redis counter shared by every worker and instance, ``unigate.shared_state``). Round robin
starts at ``n``; weighted round robin takes the n-th element of the smooth sequence, which repeats
every ``sum(weights)`` requests, so several processes drawing ticks from one counter produce
exactly the sequence one process would.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from functools import lru_cache

from unigate.routing.candidates import Candidate


class Scheduler:
    """Orders candidates for one request. One instance per Runtime."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()
        self._cursor: dict[tuple[str, str], int] = {}
        self._current: dict[tuple[str, str], dict[str, int]] = {}

    def order(
        self, algorithm: str, scope: tuple[str, str], found: Sequence[Candidate], tick: int | None = None
    ) -> list[Candidate]:
        """Return ``found`` reordered for ``algorithm``; ``scope`` is (client key label, model);
        ``tick`` is the request's number from a shared counter (see the module docstring)."""
        if len(found) <= 1:
            return list(found)
        if algorithm == "round_robin":
            start = (self._tick(scope) if tick is None else tick) % len(found)
            return [*found[start:], *found[:start]]
        if algorithm == "random":
            shuffled = list(found)
            self.rng.shuffle(shuffled)
            return shuffled
        weighted = [c for c in found if c.weight]
        if not weighted or algorithm not in ("weighted_round_robin", "smart_round_robin", "lottery"):
            return list(found)
        if algorithm == "lottery":
            first = self.rng.choices(weighted, weights=[c.weight or 0 for c in weighted])[0]
        elif tick is not None:
            cycle = smooth_cycle(tuple(c.weight or 0 for c in weighted))
            first = weighted[cycle[tick % len(cycle)]]
        else:
            first = self._smooth_wrr(scope, weighted)
        rest = [c for c in weighted if c is not first] + [c for c in found if not c.weight]
        return [first, *rest]

    def _tick(self, scope: tuple[str, str]) -> int:
        n = self._cursor.get(scope, 0)
        self._cursor[scope] = n + 1
        return n

    def _smooth_wrr(self, scope: tuple[str, str], weighted: Sequence[Candidate]) -> Candidate:
        """nginx smooth weighted round robin: add each weight to its current value, pick the
        largest, subtract the total from it. Deterministic; ties go to the earlier rule."""
        current = self._current.setdefault(scope, {})
        total = 0
        best: Candidate | None = None
        for cand in weighted:
            weight = cand.weight or 0
            name = cand.channel.name
            current[name] = current.get(name, 0) + weight
            total += weight
            if best is None or current[name] > current[best.channel.name]:
                best = cand
        assert best is not None
        current[best.channel.name] -= total
        return best


@lru_cache(maxsize=1024)
def smooth_cycle(weights: tuple[int, ...]) -> tuple[int, ...]:
    """One period (``sum(weights)`` picks) of nginx's smooth weighted round robin, as indices
    into ``weights``, starting from all-zero current weights (what ``_smooth_wrr`` produces)."""
    current = [0] * len(weights)
    total = sum(weights)
    picks = []
    for _ in range(total):
        best = 0
        for i, weight in enumerate(weights):
            current[i] += weight
            if current[i] > current[best]:
                best = i
        current[best] -= total
        picks.append(best)
    return tuple(picks)


class KeyRing:
    """Rotation over one channel's upstream keys (``api_key_schedule_algorithm``).

    ``round_robin`` (default) walks a cursor and skips unavailable keys; ``fixed_priority``
    always takes the first available key; ``random`` picks uniformly among available keys.
    ``available`` says whether a key may be used now (not cooling, not rate limited).
    """

    __slots__ = ("_algorithm", "_cursor", "_keys", "_rng")

    def __init__(self, keys: tuple[str, ...], algorithm: str, rng: random.Random) -> None:
        self._keys = keys
        self._algorithm = algorithm
        self._cursor = 0
        self._rng = rng

    @property
    def keys(self) -> tuple[str, ...]:
        return self._keys

    def pick(self, available: Callable[[str], bool], exclude: frozenset[str] = frozenset()) -> str | None:
        """The next usable key, or None when every key is excluded or unavailable."""
        keys = self._keys
        n = len(keys)
        if self._algorithm == "random":
            usable = [k for k in keys if k not in exclude and available(k)]
            return self._rng.choice(usable) if usable else None
        start = 0 if self._algorithm == "fixed_priority" else self._cursor
        for step in range(n):
            i = (start + step) % n
            key = keys[i]
            if key not in exclude and available(key):
                if self._algorithm != "fixed_priority":
                    self._cursor = i + 1
                return key
        return None
