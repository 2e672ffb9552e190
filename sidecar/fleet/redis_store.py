"""Counters shared by a fleet through Redis: each admission and each settlement is one atomic Lua
script (https://redis.io/docs/latest/develop/interact/programmability/eval-intro/), timed on the
Redis server's own clock (TIME) so the replicas agree. redis-py's asyncio client is imported here
only, when a table names Redis (the optional extra `astra-sidecar[redis]`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from astra_sidecar.sidecar.fleet.metrics import FleetMetrics
from astra_sidecar.sidecar.fleet.model import RATES, Charge, Dimension, StateUnavailableError, Verdict, Window

# KEYS: requests, input_tokens, output_tokens (GCRA TATs, ms), budget counter, stream leases.
# ARGV: 3 x (limit, windowMs, cost), budget limit, budget cost, period ms left, stream limit,
# lease id, lease ms. Returns {refused (0 none, 1-3 rates, 4 budget, 5 streams), wait ms,
# 3 x (remaining, reset ms), budget used}. Nothing is written unless every dimension admits.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local refused, wait = 0, 0
local out = {}
local writes = {}
for i = 1, 3 do
  local limit, window, cost = tonumber(ARGV[i*3-2]), tonumber(ARGV[i*3-1]), tonumber(ARGV[i*3])
  local rem, reset = 0, 0
  if limit > 0 then
    local interval = window / limit
    local tat = math.max(tonumber(redis.call('GET', KEYS[i]) or now), now)
    local new_tat = tat + math.min(cost, limit) * interval
    local w = new_tat - window - now
    if w > 0 then
      if w > wait then refused, wait = i, w end
      rem, reset = math.max(0, math.floor((window - (tat - now)) / interval + 1e-9)), tat - now
    else
      writes[i] = new_tat
      rem, reset = math.floor((window - (new_tat - now)) / interval + 1e-9), new_tat - now
    end
  end
  out[#out + 1] = rem
  out[#out + 1] = math.ceil(reset)
end
local budget, budget_cost, period_left = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local used = 0
if budget > 0 then
  used = tonumber(redis.call('GET', KEYS[4]) or 0)
  if used + budget_cost > budget then refused, wait = 4, period_left end
end
local streams, lease, lease_ms = tonumber(ARGV[13]), ARGV[14], tonumber(ARGV[15])
if refused == 0 and streams > 0 and lease ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  if redis.call('ZCARD', KEYS[5]) >= streams then refused, wait = 5, 1000 end
end
if refused == 0 then
  for i, tat in pairs(writes) do
    redis.call('SET', KEYS[i], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1)
  end
  if budget > 0 and budget_cost > 0 then
    used = redis.call('INCRBY', KEYS[4], budget_cost)
    redis.call('PEXPIRE', KEYS[4], period_left + 86400000)
  end
  if streams > 0 and lease ~= '' then
    redis.call('ZADD', KEYS[5], now + lease_ms, lease)
    redis.call('PEXPIRE', KEYS[5], lease_ms + 1000)
  end
end
local result = {refused, math.ceil(wait)}
for _, v in ipairs(out) do result[#result + 1] = v end
result[#result + 1] = used
return result
"""

# KEYS: input_tokens, output_tokens, budget, stream leases. ARGV: 2 x (limit, windowMs, delta),
# budget delta, period ms left, lease id.
_SETTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
for i = 1, 2 do
  local limit, window, delta = tonumber(ARGV[i*3-2]), tonumber(ARGV[i*3-1]), tonumber(ARGV[i*3])
  if limit > 0 and delta ~= 0 then
    local tat = math.max(tonumber(redis.call('GET', KEYS[i]) or now), now)
    local new_tat = math.max(now, tat + delta * window / limit)
    if new_tat > now then
      redis.call('SET', KEYS[i], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1)
    else
      redis.call('DEL', KEYS[i])
    end
  end
end
local delta = tonumber(ARGV[7])
if delta ~= 0 and redis.call('EXISTS', KEYS[3]) == 1 then
  if redis.call('INCRBY', KEYS[3], delta) < 0 then redis.call('SET', KEYS[3], 0, 'KEEPTTL') end
elseif delta > 0 then
  redis.call('SET', KEYS[3], delta, 'PX', tonumber(ARGV[8]) + 86400000)
end
if ARGV[9] ~= '' then redis.call('ZREM', KEYS[4], ARGV[9]) end
return 1
"""

_REFUSED: dict[int, Dimension] = {1: "requests", 2: "input_tokens", 3: "output_tokens", 4: "budget"}
_REFUSED[5] = "concurrent_streams"


class RedisCounters:
    def __init__(self, url: str, key_prefix: str, timeout_ms: int, metrics: FleetMetrics) -> None:
        try:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
        except ImportError as exc:  # the compiler (AST262) and start-up say so before a request comes
            raise RuntimeError("settings.state.redis needs redis-py: install astra-sidecar[redis]") from exc
        self._timeout_s = timeout_ms / 1000.0
        self._client: Any = Redis.from_url(
            url,
            socket_timeout=self._timeout_s,
            socket_connect_timeout=self._timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        self._admit = self._client.register_script(_ADMIT)
        self._settle = self._client.register_script(_SETTLE)
        self._prefix = key_prefix
        self._metrics = metrics

    def _keys(self, charge: Charge, *names: str) -> list[str]:
        base = f"{self._prefix}:{{{charge.base}}}"  # one hash slot per key, for Redis Cluster
        return [f"{base}:budget:{charge.period_id}" if n == "budget" else f"{base}:{n}" for n in names]

    async def _call(self, op: str, script: Any, keys: list[str], args: list[Any]) -> Any:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout_s * 2):
                return await script(keys=keys, args=args)
        except Exception as exc:  # redis-py raises ConnectionError, TimeoutError, ResponseError …
            self._metrics.state_errors.labels(op).inc()
            raise StateUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self._metrics.state_seconds.labels(op).observe(time.perf_counter() - started)

    async def admit(self, charge: Charge) -> Verdict:
        limits = charge.limits
        args: list[Any] = [n for index in range(3) for n in charge.rate(index)]
        budget_cost = charge.input_tokens + charge.output_tokens
        args += [limits.budget.tokens if limits.budget else 0, budget_cost, charge.period_left_ms]
        args += [limits.concurrent_streams or 0, charge.lease_id or "", charge.lease_ms]
        keys = self._keys(charge, *RATES, "budget", "streams")
        reply = [int(v) for v in await self._call("admit", self._admit, keys, args)]
        windows: dict[Dimension, Window] = {}
        for index, name in enumerate(RATES):
            limit = charge.rate(index)[0]
            if limit:
                windows[name] = Window(limit, reply[2 + 2 * index], reply[3 + 2 * index])
        if limits.budget:
            left = max(0, limits.budget.tokens - reply[8])
            windows["budget"] = Window(limits.budget.tokens, left, charge.period_left_ms)
        return Verdict(_REFUSED.get(reply[0]), reply[1], windows)

    async def settle(self, charge: Charge, input_delta: int, output_delta: int) -> None:
        args: list[Any] = [*charge.rate(1)[:2], input_delta, *charge.rate(2)[:2], output_delta]
        budget_delta = (input_delta + output_delta) if charge.limits.budget else 0
        args += [budget_delta, charge.period_left_ms, charge.lease_id or ""]
        keys = self._keys(charge, "input_tokens", "output_tokens", "budget", "streams")
        await self._call("settle", self._settle, keys, args)

    async def close(self) -> None:
        await self._client.aclose()
