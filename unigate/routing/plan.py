"""Glue: (key, model) → an ordered, immutable Plan of attempts, and the state behind it.

``Planner.plan`` asks ``candidates`` for the admitted channels, orders them with the key's
scheduling algorithm, drops channels that are cooling down (or, when all are, keeps only the
one that recovers soonest — B30 of the reliability matrix), and resolves each one's timeout.
Upstream keys are chosen when an attempt is made (``pick_key``), so keys of attempts never
tried are not consumed; the relay never repeats a (channel, key) pair within a request.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from unigate.config.compile import Channel, ClientKey, Runtime
from unigate.routing.candidates import Candidate, candidates_for
from unigate.routing.health import AUTH_COOLDOWN, Health
from unigate.routing.retry import Action
from unigate.routing.schedule import KeyRing, Scheduler

MAX_ATTEMPTS = 10
CANDIDATE_CACHE = 4096


@dataclass(frozen=True, slots=True)
class Attempt:
    candidate: Candidate
    timeout: float

    @property
    def channel(self) -> Channel:
        return self.candidate.channel


@dataclass(frozen=True, slots=True)
class Plan:
    """``attempts`` in order; ``budget`` = the most upstream requests this client request may
    make (AUTO_RETRY); ``keepalive`` = seconds between SSE comments while waiting, or None."""

    attempts: tuple[Attempt, ...]
    budget: int
    keepalive: float | None


def _lookup(table: Mapping[str, float], *names: str) -> float | None:
    """uni-api's precedence inside one ``model_timeout`` map: exact name, then the first key
    that is a substring of the name, for each name in turn; then ``default``."""
    for name in names:
        if name in table:
            return table[name]
        for key, value in table.items():
            if key != "default" and key in name:
                return value
    return table.get("default")


def resolve_timeout(runtime: Runtime, channel: Channel, alias: str, upstream: str) -> float:
    """Provider map (request alias, then upstream name, then default), then the global map the
    same way, then ``TIMEOUT`` (default 100 s). uni-api-compat.md §6.3 (HEAD order)."""
    found = _lookup(channel.model_timeout, alias, upstream)
    if found is None:
        found = _lookup(runtime.model_timeout, alias, upstream)
    return runtime.default_timeout if found is None else found


def resolve_keepalive(runtime: Runtime, channel: Channel, alias: str, upstream: str) -> float | None:
    """``keepalive_interval`` resolved like timeouts; None when unset or not below the timeout."""
    found = _lookup(channel.keepalive_interval, alias, upstream)
    if found is None:
        found = _lookup(runtime.keepalive_interval, alias, upstream)
    if found is None or found <= 0 or found >= resolve_timeout(runtime, channel, alias, upstream):
        return None
    return found


def attempt_budget(key: ClientKey, pairs: int) -> int:
    """AUTO_RETRY: false → 1; an integer N → 1 + N; true → every (channel, key) pair once,
    at most ``MAX_ATTEMPTS``."""
    if not key.auto_retry:
        return 1
    if key.retry_count is not None:
        return max(1, min(1 + key.retry_count, pairs, MAX_ATTEMPTS))
    return max(1, min(pairs, MAX_ATTEMPTS))


class Planner:
    """Holds the per-process scheduling and health state; one per Runtime."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        clock: Callable[[], float],
        rng: random.Random | None = None,
        health: Health | None = None,
    ) -> None:
        self.runtime = runtime
        self.rng = rng or random.Random()
        self.health = health or Health(clock)
        self.scheduler = Scheduler(self.rng)
        self._rings = {c.name: KeyRing(c.keys, c.key_schedule, self.rng) for c in runtime.channels}
        self._candidates: dict[tuple[str, str], list[Candidate]] = {}
        self._timings: dict[tuple[str, str, str], tuple[float, float | None]] = {}

    def plan(self, key: ClientKey, model: str, tick: int | None = None) -> Plan:
        """The attempts for one request, best first. Raises NotFound / PermissionDenied.
        ``tick``: the request's number from a shared cursor (``Scheduler.order``)."""
        found = self._candidates.get((key.id, model))
        if found is None:
            found = self._remember((key.id, model), candidates_for(self.runtime, key, model))
        ordered = self.scheduler.order(key.scheduling, (key.id, model), found, tick) if len(found) > 1 else found
        health = self.health
        usable = [c for c in ordered if health.channel_available(c.channel.name, c.upstream_model)]
        if not usable:
            usable = [min(ordered, key=lambda c: health.channel_until(c.channel.name, c.upstream_model))]
        attempts = tuple(Attempt(c, self._timing(c)[0]) for c in usable)
        pairs = sum(max(1, len(a.channel.keys)) for a in attempts)
        return Plan(attempts, attempt_budget(key, pairs), self._timing(attempts[0].candidate)[1])

    def needs_tick(self, key: ClientKey, model: str) -> bool:
        """Whether this key's order for ``model`` depends on a request counter (round robin or
        weighted round robin over several candidates) — only then is a shared tick worth a trip."""
        if key.scheduling not in ("round_robin", "weighted_round_robin", "smart_round_robin"):
            return False
        found = self._candidates.get((key.id, model))
        if found is None:
            found = self._remember((key.id, model), candidates_for(self.runtime, key, model))
        return len(found) > 1

    def _remember(self, scope: tuple[str, str], found: list[Candidate]) -> list[Candidate]:
        """Candidates are a pure function of the Runtime: computed once per (key, model). The
        cache is bounded (request-side wildcards could name many models)."""
        if len(self._candidates) < CANDIDATE_CACHE:
            self._candidates[scope] = found
        return found

    def _timing(self, c: Candidate) -> tuple[float, float | None]:
        """(timeout, keepalive) of a candidate, resolved once per (channel, alias, upstream)."""
        scope = (c.channel.name, c.alias, c.upstream_model)
        timing = self._timings.get(scope)
        if timing is None:
            runtime = self.runtime
            timing = (
                resolve_timeout(runtime, c.channel, c.alias, c.upstream_model),
                resolve_keepalive(runtime, c.channel, c.alias, c.upstream_model),
            )
            self._timings[scope] = timing
        return timing

    def pick_key(self, channel: Channel, exclude: frozenset[str] = frozenset()) -> tuple[bool, str | None]:
        """(usable, key) for the next attempt on ``channel``. A channel without keys is usable
        with key None; one whose keys are all cooling or excluded is not usable."""
        if not channel.keys:
            return True, None
        health = self.health
        key = self._rings[channel.name].pick(lambda k: health.key_available(channel.name, k), exclude)
        return key is not None, key

    def record_failure(self, attempt: Attempt, api_key: str | None, action: Action, retry_after: float | None) -> None:
        """Apply the cooldowns ``action`` asks for."""
        channel = attempt.channel
        health = self.health
        if action.cool_channel:
            period = channel.cooldown_period
            if period is None:
                period = self.runtime.cooldown_period
            health.channel_failed(channel.name, attempt.candidate.upstream_model, period)
        if action.cool_key == "none":
            return
        if action.cool_key == "rate":
            seconds = retry_after if retry_after is not None else channel.key_cooldown_period
        else:
            seconds = max(channel.key_cooldown_period, AUTH_COOLDOWN)
        if api_key is None:
            # A keyless channel (a Vertex service account): its one credential is the channel's.
            health.cool_channel(channel.name, attempt.candidate.upstream_model, seconds)
        else:
            health.cool_key(channel.name, api_key, seconds)

    def record_success(self, attempt: Attempt) -> None:
        self.health.channel_succeeded(attempt.channel.name, attempt.candidate.upstream_model)

    def soonest_key_recovery(self, attempts: tuple[Attempt, ...]) -> float | None:
        """Seconds until the first cooled key of these channels recovers (for Retry-After)."""
        now = self.health.clock()
        times = [
            self.health.key_until(a.channel.name, k) - now
            for a in attempts
            for k in a.channel.keys
            if self.health.key_until(a.channel.name, k) > now
        ]
        return min(times) if times else None
