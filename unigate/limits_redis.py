"""Redis storage for the limits engine: one Lua script per operation, so every decision is atomic.

**Atomicity.** Redis runs a script to completion before it serves any other command, from any
client. :data:`APPLY_LUA` expires, checks *every* window of a scope and then charges all of them
(or none) inside one script, so 200 concurrent ``acquire`` calls against ``100/min`` admit exactly
100 whether they come from one process or from many processes and hosts, and a request refused
by its second window never consumes its first. ``adjust`` and the counters are single scripts or
single commands too.

**Layout** (``P`` = the prefix, default ``unigate:``; ``{scope}`` is a hash tag, so every key of a
scope lands on one Redis Cluster slot):

* ``P rl:{scope}:r<period>`` — request window: sorted set, member = ``<time>-<seq>``, score =
  time in µs; every entry costs 1, so ``ZCARD`` is the count.
* ``P rl:{scope}:t<period>`` — token window: sorted set, member = ``<time>-<seq>:<cost>``, score =
  time in µs.
* ``P rl:{scope}:m`` — hash: ``seq`` (member numbers) and ``t<period in µs>`` (each token window's total).
* ``P kv:<key>`` — the shared counters and floats.

Windows expire (``PEXPIRE``) one period + 1 s after their last charge; the hash lives as long as
its longest window. **Time** is the Redis server's ``TIME`` by default, one clock for every
process and host that shares the server; tests (and only tests) inject their own clock, whose
value is passed to the script as an argument. A socket error or any ``RedisError`` becomes
:class:`BackendUnavailable`, except a wrong-type reply (:data:`_CALLER_ERRORS`: ``ValueError``, as
in memory); connection errors are retried once (a stale pooled connection after
a Redis restart), timeouts never (the script may have run).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from unigate.limits_base import US, BackendUnavailable, Mode, Raw, Window, WindowRaw

_COMMON_LUA = """
local function cost_of(member)
  return tonumber(string.match(member, ':(%d+)$'))
end

local function now_us(arg)
  if arg == '' then
    if redis.replicate_commands then redis.replicate_commands() end  -- Redis < 5: TIME before writes
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return tonumber(arg)
end

-- Drop entries that left the window (time <= now - period); return the live total.
local function expire(meta, z, tokens, tag, period, now)
  local cutoff = now - period
  if not tokens then
    redis.call('ZREMRANGEBYSCORE', z, '-inf', cutoff)
    return redis.call('ZCARD', z)
  end
  local stored = tonumber(redis.call('HGET', meta, tag) or 0)
  local total = stored
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', cutoff)
  if #gone > 0 then
    for _, m in ipairs(gone) do total = total - cost_of(m) end
    redis.call('ZREMRANGEBYSCORE', z, '-inf', cutoff)
  end
  if total < 0 or redis.call('ZCARD', z) == 0 then total = 0 end
  if total ~= stored then
    if total == 0 then redis.call('HDEL', meta, tag) else redis.call('HSET', meta, tag, total) end
  end
  return total
end

-- A member name unique even if the meta hash (and its seq) were lost: time and sequence.
local function member(now, seq)
  return string.format('%.0f', now) .. '-' .. seq
end

-- Charge `weight` at `now`; a token entry younger than `merge` absorbs it and moves to `now`.
local function add(meta, z, tokens, tag, period, merge, now, weight, seq)
  if tokens then
    if merge > 0 then
      local newest = redis.call('ZRANGE', z, -1, -1, 'WITHSCORES')
      if newest[1] then
        local age = now - tonumber(newest[2])
        if age >= 0 and age < merge then
          redis.call('ZREM', z, newest[1])
          redis.call('ZADD', z, now, member(now, seq) .. ':' .. (cost_of(newest[1]) + weight))
          redis.call('HINCRBY', meta, tag, weight)
          redis.call('PEXPIRE', z, math.floor(period / 1000) + 1000)
          return
        end
      end
    end
    redis.call('ZADD', z, now, member(now, seq) .. ':' .. weight)
    redis.call('HINCRBY', meta, tag, weight)
  else
    redis.call('ZADD', z, now, member(now, seq))
  end
  redis.call('PEXPIRE', z, math.floor(period / 1000) + 1000)
end

local function keep_meta(meta, ttl_ms)
  if redis.call('PTTL', meta) < ttl_ms then redis.call('PEXPIRE', meta, ttl_ms) end
end
"""

APPLY_LUA = (
    _COMMON_LUA
    + """
-- KEYS[1] = meta hash, KEYS[1 + i] = window i.
-- ARGV: mode ('acquire'|'peek'|'charge'), now_us ('' = server TIME), cost,
--       then per window: kind ('r'|'t'), limit, period_us.
local mode, now, cost = ARGV[1], now_us(ARGV[2]), tonumber(ARGV[3])
local meta, n = KEYS[1], #KEYS - 1
local totals, weights, admits = {}, {}, true
for i = 1, n do
  local b = 1 + i * 3
  local tokens, limit, period = ARGV[b] == 't', tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  totals[i] = expire(meta, KEYS[i + 1], tokens, ARGV[b] .. ARGV[b + 2], period, now)
  weights[i] = tokens and cost or 1
  if totals[i] + weights[i] > limit then admits = false end
end
local charged = mode == 'charge' or (mode == 'acquire' and admits)
if charged then
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  local ttl = 0
  for i = 1, n do
    local b = 1 + i * 3
    local tokens, period = ARGV[b] == 't', tonumber(ARGV[b + 2])
    if weights[i] > 0 then
      add(meta, KEYS[i + 1], tokens, ARGV[b] .. ARGV[b + 2], period, tokens and math.floor(period / 1000) or 0,
          now, weights[i], seq)
      totals[i] = totals[i] + weights[i]
    end
    ttl = math.max(ttl, math.floor(period / 1000) + 1000)
  end
  keep_meta(meta, ttl)
end
local out = {(charged or admits) and 1 or 0}
for i = 1, n do
  local b = 1 + i * 3
  local z, tokens, limit, period = KEYS[i + 1], ARGV[b] == 't', tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local reset, retry = 0, -2
  local oldest = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  if oldest[1] then reset = tonumber(oldest[2]) + period - now end
  if not charged then
    local need = totals[i] + weights[i] - limit
    if weights[i] > limit then
      retry = -1
    elseif need > 0 and not tokens then
      local e = redis.call('ZRANGE', z, need - 1, need - 1, 'WITHSCORES')
      retry = e[2] and (tonumber(e[2]) + period - now) or -1
    elseif need > 0 then
      retry = -1
      local freed, start = 0, 0
      while retry == -1 do
        local page = redis.call('ZRANGE', z, start, start + 63, 'WITHSCORES')
        if #page == 0 then break end
        for j = 1, #page, 2 do
          freed = freed + cost_of(page[j])
          if freed >= need then retry = tonumber(page[j + 1]) + period - now break end
        end
        start = start + 64
      end
    end
  end
  out[#out + 1] = totals[i]
  out[#out + 1] = reset
  out[#out + 1] = retry
end
return out
"""
)

ADJUST_LUA = (
    _COMMON_LUA
    + """
-- KEYS[1] = meta hash, KEYS[1 + i] = token window i. ARGV: now_us ('' = server TIME), delta,
-- then per window: period_us. delta > 0 charges now; delta < 0 refunds from the oldest entries.
local now, delta, meta = now_us(ARGV[1]), tonumber(ARGV[2]), KEYS[1]
local seq = redis.call('HINCRBY', meta, 'seq', 1)
local ttl = 0
for i = 1, #KEYS - 1 do
  local z, period = KEYS[i + 1], tonumber(ARGV[2 + i])
  local tag = 't' .. ARGV[2 + i]
  local total = expire(meta, z, true, tag, period, now)
  if delta > 0 then
    add(meta, z, true, tag, period, math.floor(period / 1000), now, delta, seq)
  elseif total > 0 then
    local left = math.min(-delta, total)
    total = total - left
    while left > 0 do
      local first = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
      if not first[1] then break end
      local c = cost_of(first[1])
      redis.call('ZREM', z, first[1])
      if c > left then
        redis.call('ZADD', z, first[2], member(now, seq) .. 'r:' .. (c - left))
        left = 0
      else
        left = left - c
      end
    end
    if total == 0 then redis.call('HDEL', meta, tag) else redis.call('HSET', meta, tag, total) end
    redis.call('PEXPIRE', z, math.floor(period / 1000) + 1000)  -- a re-added entry may have recreated z
  end
  ttl = math.max(ttl, math.floor(period / 1000) + 1000)
end
keep_meta(meta, ttl)
return 1
"""
)

_INCR_LUA = """
local v = redis.call(ARGV[3], KEYS[1], ARGV[1])
if ARGV[2] ~= '' and redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return tostring(v)
"""


_CALLER_ERRORS = ("WRONGTYPE", "value is not an integer", "value is not a valid float")
"""Replies that mean "this key holds another kind of value" (e.g. ``incr`` on a float). Every
other Redis error (MISCONF, BUSY, OOM, READONLY, LOADING, NOAUTH, …) counts as unavailability."""


def _ttl_ms(ttl: float | None) -> str:
    return "" if ttl is None else str(max(1, round(ttl * 1000)))


class RedisBackend:
    """Windows and counters in Redis (see the module docstring for layout, time and atomicity).

    ``clock`` (tests only) replaces the server's ``TIME``: seconds, shared by every process that
    must agree. ``socket_timeout`` bounds how long a silent Redis can hold a request before the
    :class:`Limiter` falls back; ``max_connections`` caps the pool (callers beyond it wait up to
    ``socket_timeout`` for a free connection).
    """

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "unigate:",
        clock: Callable[[], float] | None = None,
        socket_timeout: float = 1.0,
        max_connections: int = 64,
    ) -> None:
        pool: BlockingConnectionPool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=socket_timeout,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self.redis: Redis = Redis(connection_pool=pool)
        self.prefix = prefix
        self.clock = clock
        self._apply = self.redis.register_script(APPLY_LUA)
        self._adjust = self.redis.register_script(ADJUST_LUA)
        self._incr = self.redis.register_script(_INCR_LUA)

    def _now_arg(self) -> str:
        return "" if self.clock is None else str(round(self.clock() * US))

    def _keys(self, scope: str, windows: Sequence[Window]) -> list[str]:
        base = f"{self.prefix}rl:{{{scope}}}:"
        return [base + "m", *(base + w.tag for w in windows)]

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except ResponseError as exc:
            if any(text in str(exc) for text in _CALLER_ERRORS):  # the caller's mistake, not an outage
                raise ValueError(f"Redis refused the operation: {exc}") from exc
            raise BackendUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except (RedisError, OSError) as exc:  # OSError covers TimeoutError
            raise BackendUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def apply(self, scope: str, windows: tuple[Window, ...], mode: Mode, cost: int) -> Raw:
        args: list[str | int] = [mode, self._now_arg(), cost]
        for w in windows:
            args += ("t" if w.tokens else "r", w.term.limit, w.period_us)
        reply = await self._call(self._apply(keys=self._keys(scope, windows), args=args))
        values = [int(v) for v in reply]
        per_window: list[WindowRaw] = [(values[i], values[i + 1], values[i + 2]) for i in range(1, len(values), 3)]
        return bool(values[0]), tuple(per_window)

    async def adjust(self, scope: str, windows: tuple[Window, ...], delta: int) -> None:
        tokens = [w for w in windows if w.tokens]
        if not tokens or delta == 0:
            return
        args: list[str | int] = [self._now_arg(), delta, *(w.period_us for w in tokens)]
        await self._call(self._adjust(keys=self._keys(scope, tokens), args=args))

    def _kv(self, key: str) -> str:
        return f"{self.prefix}kv:{key}"

    async def incr(self, key: str, by: int, ttl: float | None) -> int:
        reply = await self._call(self._incr(keys=[self._kv(key)], args=[by, _ttl_ms(ttl), "INCRBY"]))
        return int(reply)

    async def incr_float(self, key: str, by: float, ttl: float | None) -> float:
        reply = await self._call(self._incr(keys=[self._kv(key)], args=[repr(float(by)), _ttl_ms(ttl), "INCRBYFLOAT"]))
        return float(reply)

    async def get_float(self, key: str) -> float | None:
        reply = await self._call(self.redis.get(self._kv(key)))
        return None if reply is None else float(reply)

    async def put_float(self, key: str, value: float, ttl: float | None) -> None:
        px = None if ttl is None else max(1, round(ttl * 1000))
        await self._call(self.redis.set(self._kv(key), repr(float(value)), px=px))

    async def delete(self, key: str) -> None:
        await self._call(self.redis.delete(self._kv(key)))

    async def aclose(self) -> None:
        await self.redis.aclose()
