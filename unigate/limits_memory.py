"""In-process storage for the limits engine, on an injected clock.

**Atomicity.** Every public method runs its whole read-check-write without an ``await``, so on
one event loop no other coroutine can observe or change a scope between "check every window" and
"charge every window": 200 concurrent ``acquire`` calls against ``100/min`` admit exactly 100, and
a request refused by its second window never consumed its first. The object is not thread-safe
(one instance per event loop); separate processes do not share it (that is what Redis is for).

A window is a deque of ``[time_us, cost]`` entries in time order plus their running total;
entries leave when ``time_us + period_us <= now`` (the moving-window rule of ``limits_base``).
Empty windows and expired counters are dropped by a sweep that runs at most once per
``SWEEP_EVERY`` seconds of the clock, so client-chosen scopes (per request model) cannot grow
memory without bound.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from unigate.limits_base import ADMITS, NEVER, US, Mode, Raw, Window, WindowRaw

SWEEP_EVERY = 60.0


class _Log:
    """One moving window: entries ``[time_us, cost]`` oldest first, and their total."""

    __slots__ = ("entries", "period", "total")

    def __init__(self, period: int) -> None:
        self.entries: deque[list[int]] = deque()
        self.total = 0
        self.period = period

    def expire(self, now: int) -> None:
        entries, cutoff = self.entries, now - self.period
        while entries and entries[0][0] <= cutoff:
            self.total -= entries.popleft()[1]
        if not entries:
            self.total = 0

    def add(self, now: int, cost: int, merge: int) -> None:
        entries = self.entries
        if merge and entries and 0 <= now - entries[-1][0] < merge:
            newest = entries[-1]
            newest[0] = now
            newest[1] += cost
        else:
            entries.append([now, cost])
        self.total += cost

    def refund(self, amount: int) -> None:
        entries = self.entries
        while amount > 0 and entries:
            oldest = entries[0]
            if oldest[1] <= amount:
                amount -= oldest[1]
                self.total -= oldest[1]
                entries.popleft()
            else:
                oldest[1] -= amount
                self.total -= amount
                amount = 0

    def reset_us(self, now: int) -> int:
        return self.entries[0][0] + self.period - now if self.entries else 0

    def retry_us(self, now: int, weight: int, limit: int, unit_costs: bool) -> int:
        if weight > limit:
            return NEVER
        need = self.total + weight - limit
        if need <= 0:
            return ADMITS
        if unit_costs:  # request windows hold cost-1 entries only
            return self.entries[need - 1][0] + self.period - now
        freed = 0
        for stamp, cost in self.entries:
            freed += cost
            if freed >= need:
                return stamp + self.period - now
        return NEVER


def _fresh_retry(weight: int, limit: int) -> int:
    return NEVER if weight > limit else ADMITS


class MemoryBackend:
    """Windows and counters in this process. ``clock`` returns seconds (monotonic by default)."""

    name = "memory"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._logs: dict[tuple[str, str], _Log] = {}
        self._values: dict[str, tuple[int | float, float | None]] = {}
        self._next_sweep = clock() + SWEEP_EVERY

    def _now_us(self) -> int:
        now = self.clock()
        if now >= self._next_sweep:
            self._sweep(now)
        return round(now * US)

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + SWEEP_EVERY
        now_us = round(now * US)
        for key, log in list(self._logs.items()):
            log.expire(now_us)
            if not log.entries:
                del self._logs[key]
        for name, (_, expires) in list(self._values.items()):
            if expires is not None and expires <= now:
                del self._values[name]

    # -- windows ----------------------------------------------------------------------------

    async def apply(self, scope: str, windows: tuple[Window, ...], mode: Mode, cost: int) -> Raw:
        return self.apply_now(scope, windows, mode, cost)

    def apply_now(self, scope: str, windows: tuple[Window, ...], mode: Mode, cost: int) -> Raw:
        """:meth:`apply` without the coroutine (no await anywhere: atomic on the event loop)."""
        now = self._now_us()
        logs: list[_Log | None] = []
        admits = True
        for w in windows:
            log = self._logs.get((scope, w.tag))
            if log is not None:
                log.expire(now)
            if (log.total if log else 0) + w.weight(cost) > w.term.limit:
                admits = False
            logs.append(log)
        charged = mode == "charge" or (mode == "acquire" and admits)
        out: list[WindowRaw] = []
        for i, w in enumerate(windows):
            weight = w.weight(cost)
            log = logs[i]
            if charged and weight > 0:
                if log is None:
                    log = self._logs[(scope, w.tag)] = _Log(w.period_us)
                log.add(now, weight, w.merge_us)
            if log is None:
                out.append((0, 0, ADMITS if charged else _fresh_retry(weight, w.term.limit)))
                continue
            retry = ADMITS if charged else log.retry_us(now, weight, w.term.limit, not w.tokens)
            out.append((log.total, log.reset_us(now), retry))
        return (charged or admits), tuple(out)

    async def adjust(self, scope: str, windows: tuple[Window, ...], delta: int) -> None:
        now = self._now_us()
        for w in windows:
            if not w.tokens or delta == 0:
                continue
            log = self._logs.get((scope, w.tag))
            if log is None:
                if delta < 0:
                    continue
                log = self._logs[(scope, w.tag)] = _Log(w.period_us)
            log.expire(now)
            if delta > 0:
                log.add(now, delta, w.merge_us)
            else:
                log.refund(-delta)

    # -- counters ---------------------------------------------------------------------------

    def _live(self, key: str) -> tuple[int | float, float | None] | None:
        entry = self._values.get(key)
        if entry is not None and entry[1] is not None and entry[1] <= self.clock():
            del self._values[key]
            return None
        return entry

    def _bump(self, key: str, by: int | float, ttl: float | None) -> int | float:
        entry = self._live(key)
        value, expires = entry if entry is not None else (0, None)
        if isinstance(by, int) and not isinstance(value, int):
            raise ValueError(f"counter {key!r} holds a float; use incr_float")
        if expires is None and ttl is not None:
            expires = self.clock() + ttl
        value += by
        self._values[key] = (value, expires)
        return value

    async def incr(self, key: str, by: int, ttl: float | None) -> int:
        value = self._bump(key, by, ttl)
        assert isinstance(value, int)
        return value

    async def incr_float(self, key: str, by: float, ttl: float | None) -> float:
        return float(self._bump(key, float(by), ttl))

    async def get_float(self, key: str) -> float | None:
        entry = self._live(key)
        return None if entry is None else float(entry[0])

    async def put_float(self, key: str, value: float, ttl: float | None) -> None:
        self._values[key] = (float(value), None if ttl is None else self.clock() + ttl)

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)

    async def aclose(self) -> None:
        return None
