"""The vocabulary of the limits engine: windows, decisions, and the seam a storage backend fills.

A rate limit (``RateLimit`` from ``config.schema``, parsed from ``"15/min,100000/tpm,4000/tpr"``)
becomes a :class:`Plan`: one :class:`Window` per ``(kind, period)`` and at most one per-request
token cap (``tpr``). Two terms with the same kind and period collapse to the smaller limit (they
would share one stored window).

**Moving window.** An entry charged at time ``t`` counts while ``now < t + period`` and stops
counting at exactly ``t + period``: with ``2/min``, two requests at ``T`` are admitted, a third is
refused at ``T`` and still at ``T + 59.999 s``, and admitted at ``T + 60 s``. Times are integer
microseconds, so both backends compare the same numbers.

**What is charged.** A request window (``N/s``…``N/year``) is charged 1 per admitted request; a
token window (``tpm``/``tpd``) is charged ``cost`` (the request's tokens). A request window only
ever holds cost-1 entries, so it stays exact to the microsecond and holds at most ``limit``
entries. A token window merges a charge into its newest entry when that entry is younger than
``period / 1000`` (60 ms for tpm, 86.4 s for tpd) and moves the merged entry to the new time, so
its size stays bounded (≤ 1000 live entries) and its error is conservative: tokens may count up to
``period / 1000`` longer than exact, never shorter.

A :class:`Backend` applies a plan to one scope *atomically* (see ``limits_memory`` and
``limits_redis`` for how each guarantees it) and returns a :data:`Raw` result that
:func:`decide` turns into a :class:`Decision`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Protocol

from unigate.config.values import RateLimit

Mode = Literal["acquire", "peek", "charge"]
"""``acquire``: check every window, charge all of them only if all admit. ``peek``: check, never
charge. ``charge``: charge every window unconditionally (usage that already happened)."""

ADMITS = -2
"""``retry_us`` of a window that admits the request."""
NEVER = -1
"""``retry_us`` of a window that can never admit it (the cost alone exceeds the limit)."""

WindowRaw = tuple[int, int, int]
"""Per window, after the operation: ``(used, reset_us, retry_us)``. ``reset_us`` is the time until
the oldest live entry leaves (0 when the window is empty); ``retry_us`` is :data:`ADMITS`,
:data:`NEVER`, or the time until enough has left for this request to fit."""
Raw = tuple[bool, tuple[WindowRaw, ...]]
"""``(allowed, per-window results in plan order)``."""

US = 1_000_000


@dataclass(frozen=True, slots=True)
class Window:
    """One stored moving window. ``tag`` names it inside a scope (``r60``, ``t86400``)."""

    term: RateLimit
    tokens: bool
    period_us: int
    merge_us: int
    tag: str

    def weight(self, cost: int) -> int:
        """What one request charges here: 1 for a request window, ``cost`` for a token window."""
        return cost if self.tokens else 1


@dataclass(frozen=True, slots=True)
class Plan:
    """The normalised form of a rate limit list; build it with :func:`plan_of` (cached)."""

    windows: tuple[Window, ...]
    per_request: RateLimit | None

    @property
    def token_windows(self) -> tuple[Window, ...]:
        return tuple(w for w in self.windows if w.tokens)


@lru_cache(maxsize=4096)
def plan_of(limits: tuple[RateLimit, ...]) -> Plan:
    """Windows of ``limits`` in a stable order; same (kind, period) keeps the smaller limit;
    several ``tpr`` terms keep the smallest."""
    best: dict[tuple[bool, int], RateLimit] = {}
    per_request: RateLimit | None = None
    for term in limits:
        if term.limit < 0:
            raise ValueError(f"a rate limit cannot be negative: {term}")
        if term.kind == "tokens_per_request":
            if per_request is None or term.limit < per_request.limit:
                per_request = term
            continue
        if term.period <= 0:
            raise ValueError(f"a rate window needs a positive period: {term}")
        slot = (term.kind == "tokens", term.period)
        if slot not in best or term.limit < best[slot].limit:
            best[slot] = term
    windows = tuple(
        Window(
            term=term,
            tokens=tokens,
            period_us=period * US,
            merge_us=period * US // 1000 if tokens else 0,
            tag=f"{'t' if tokens else 'r'}{period}",
        )
        for (tokens, period), term in sorted(best.items())
    )
    return Plan(windows, per_request)


@dataclass(frozen=True, slots=True)
class WindowState:
    """One window after an operation: its term, what is left, and when its oldest entry leaves."""

    limit: RateLimit
    remaining: int
    reset_after: float


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of :meth:`Limiter.acquire` / ``peek`` / ``charge``.

    * ``allowed`` — admitted (acquire: and charged; peek: would be admitted).
    * ``limit`` — the binding term: when refused, the window that admits last (or the ``tpr`` cap);
      when allowed, the window closest to exhaustion (smallest ``remaining / limit``, then the
      longer period). ``None`` when no limit applies.
    * ``remaining`` — what is left in the binding window after this operation (requests or tokens).
    * ``reset_after`` — seconds until the binding window frees its oldest slot (0 when empty).
    * ``retry_after`` — when refused, seconds until this same request would be admitted if nothing
      else is charged meanwhile; ``None`` when allowed, or when it can never fit (a ``tpr`` cap,
      or a cost above a window's whole limit).
    * ``windows`` — every window, for the per-kind ``x-ratelimit-*`` headers (:meth:`headers`).
    """

    allowed: bool
    limit: RateLimit | None
    remaining: int
    reset_after: float
    retry_after: float | None
    windows: tuple[WindowState, ...] = ()

    def headers(self) -> dict[str, str]:
        """OpenAI's headers: ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` from the
        tightest window of each kind, plus ``retry-after`` (whole seconds, rounded up) and
        ``retry-after-ms`` when refused with a known retry time."""
        out: dict[str, str] = {}
        for kind in ("requests", "tokens"):
            states = [s for s in self.windows if s.limit.kind == kind]
            if not states:
                continue
            tight = min(states, key=_tightness)
            out[f"x-ratelimit-limit-{kind}"] = str(tight.limit.limit)
            out[f"x-ratelimit-remaining-{kind}"] = str(tight.remaining)
            out[f"x-ratelimit-reset-{kind}"] = go_duration(tight.reset_after)
        if not self.allowed and self.retry_after is not None:
            out["retry-after"] = str(max(1, math.ceil(self.retry_after)))
            out["retry-after-ms"] = str(max(1, math.ceil(self.retry_after * 1000)))
        return out


UNLIMITED = Decision(allowed=True, limit=None, remaining=0, reset_after=0.0, retry_after=None)


def _tightness(state: WindowState) -> tuple[float, int]:
    ratio = state.remaining / state.limit.limit if state.limit.limit else 0.0
    return ratio, -state.limit.period


def go_duration(seconds: float) -> str:
    """A duration as OpenAI writes it in ``x-ratelimit-reset-*``: ``20ms``, ``1s``, ``6m0s``,
    ``1h2m3.5s`` (Go's ``time.Duration`` format, millisecond precision)."""
    ms = max(0, math.ceil(seconds * 1000 - 1e-6))
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def refuse_per_request(plan: Plan, cost: int) -> Decision | None:
    """The ``tpr`` check: a request whose ``cost`` exceeds the cap is refused for good
    (``retry_after`` None, ``remaining`` = the cap, no windows: it is a 413-style refusal)."""
    cap = plan.per_request
    if cap is None or cost <= cap.limit:
        return None
    return Decision(allowed=False, limit=cap, remaining=cap.limit, reset_after=0.0, retry_after=None)


def decide(plan: Plan, raw: Raw) -> Decision:
    """Turn a backend's :data:`Raw` result into a :class:`Decision` (see its docstring)."""
    allowed, per_window = raw
    if len(per_window) == 1:  # the common case, without the selection below
        term = plan.windows[0].term
        used, reset, retry = per_window[0]
        state = WindowState(term, max(0, term.limit - used), reset / US)
        single = None if allowed or retry == NEVER else retry / US
        return Decision(allowed, term, state.remaining, state.reset_after, single, (state,))
    states = tuple(
        WindowState(w.term, max(0, w.term.limit - used), reset / US)
        for w, (used, reset, _) in zip(plan.windows, per_window, strict=True)
    )
    if not states:
        return UNLIMITED
    retry_after: float | None = None
    if allowed:
        index = min(range(len(states)), key=lambda i: _tightness(states[i]))
    else:
        retries = [r for _, _, r in per_window]
        if NEVER in retries:
            index = retries.index(NEVER)
        else:
            index = max(range(len(retries)), key=lambda i: retries[i])
            retry_after = retries[index] / US
    binding = states[index]
    return Decision(allowed, binding.limit, binding.remaining, binding.reset_after, retry_after, states)


class BackendUnavailable(Exception):
    """A shared backend (Redis) could not answer; the :class:`Limiter` decides what that means."""


class Backend(Protocol):
    """Where windows and counters live. Every method is atomic for the scope or key it touches.

    ``apply`` evaluates ``windows`` of ``scope`` at the backend's current time under ``mode``
    (see :data:`Mode`) and returns one :data:`WindowRaw` per window. ``adjust`` adds ``delta``
    tokens to token windows (a new entry now), or refunds ``-delta`` from their oldest live entries
    (conservative: never frees more than an exact refund of the original entry would). Counters
    are plain keys; ``ttl`` is seconds (``incr*``: set only when the key has no expiry yet).
    Remote backends raise :class:`BackendUnavailable` when they cannot answer.
    """

    name: str

    async def apply(self, scope: str, windows: tuple[Window, ...], mode: Mode, cost: int) -> Raw: ...

    async def adjust(self, scope: str, windows: tuple[Window, ...], delta: int) -> None: ...

    async def incr(self, key: str, by: int, ttl: float | None) -> int: ...

    async def incr_float(self, key: str, by: float, ttl: float | None) -> float: ...

    async def get_float(self, key: str) -> float | None: ...

    async def put_float(self, key: str, value: float, ttl: float | None) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def aclose(self) -> None: ...
