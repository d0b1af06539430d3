"""Glue: (key, model) → an ordered, immutable list of Attempts.


``Planner.plan`` asks ``candidates`` for the admitted channels, orders them with the key's
scheduling algorithm, and gives each its upstream key and timeout. The relay walks the list; it
never goes back to an attempt already tried in the same request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from unigate.config.compile import Channel, ClientKey, Runtime
from unigate.routing.candidates import Candidate, candidates_for


@dataclass(frozen=True, slots=True)
class Attempt:
    candidate: Candidate
    timeout: float

    @property
    def channel(self) -> Channel:
        return self.candidate.channel


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


class KeyRing:
    """Round-robin over one channel's upstream keys (exact under concurrency: the event loop
    is single-threaded and ``next`` never awaits)."""

    __slots__ = ("_cursor", "_keys")

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._keys = keys
        self._cursor = 0

    def next(self) -> str | None:
        if not self._keys:
            return None
        key = self._keys[self._cursor % len(self._keys)]
        self._cursor += 1
        return key


class Planner:
    """Holds the per-process scheduling state; one per Runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._rings = {c.name: KeyRing(c.keys) for c in runtime.channels}

    def plan(self, key: ClientKey, model: str) -> list[Attempt]:
        """The attempts for one request, best first. Raises NotFound / PermissionDenied."""
        runtime = self.runtime
        found = candidates_for(runtime, key, model)
        if not key.auto_retry:
            found = found[:1]
        return [Attempt(c, resolve_timeout(runtime, c.channel, c.alias, c.upstream_model)) for c in found]

    def pick_key(self, channel: Channel) -> str | None:
        """The upstream key for the next attempt on ``channel`` (chosen when the attempt is
        made, so keys of attempts never tried are not consumed)."""
        return self._rings[channel.name].next()
