"""Circuit breakers shared by a fleet through Redis (`circuitBreaker.shared: true`).

Each replica keeps its own breaker (`astra_sidecar.sidecar.resilience.breaker`); with a shared
store behind it, a replica also
- records each failure it counts in Redis (one Lua script: the failure window as a sorted set of
  server-clock timestamps; at `failureThreshold` inside `windowMs` it sets the open key with a TTL
  of `cooldownMs` — the open-until timestamp — and clears the window),
- publishes the openings it decides itself (the open key, TTL `cooldownMs`),
- before each attempt reads the open key's remaining TTL (PTTL), and opens locally for what is
  left of it, so one replica's evidence opens the breaker of all.

After the cooldown every replica goes half-open on its own and lets one probe through. Redis
unreachable: each replica falls back on its local breaker alone, counted
(`astra_breaker_state_errors_total{op}`, `astra_breaker_state_available`) and logged once per
transition. Keys: `<keyPrefix>:breaker:{<cluster key>}:failures|open` (one hash slot per cluster).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from astra_sidecar.compiler.table import BreakerPolicy, RoutingTable
from astra_sidecar.compiler.table.fleet import RedisState
from astra_sidecar.sidecar.fleet.availability import StateAvailability
from astra_sidecar.sidecar.fleet.metrics import FleetMetrics

# KEYS: failures (sorted set), open. ARGV: windowMs, failureThreshold, cooldownMs, failure id.
# Returns the ms the breaker stays open (0: still closed).
_RECORD = """
local open_ms = redis.call('PTTL', KEYS[2])
if open_ms > 0 then return open_ms end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, threshold, cooldown = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
if redis.call('ZCARD', KEYS[1]) >= threshold then
  redis.call('SET', KEYS[2], '1', 'PX', cooldown)
  redis.call('DEL', KEYS[1])
  return cooldown
end
return 0
"""

#: Called with the ms the shared breaker stays open, when a recorded failure opened it.
Opened = Callable[[int], None]


class SharedBreakers:
    """The fleet's breaker state; lives in the shared state (across reloads), `configure`d per table."""

    def __init__(self, metrics: FleetMetrics, env: Mapping[str, str]) -> None:
        self._metrics, self._env = metrics, env
        self._state: RedisState | None = None
        self._client: Any = None
        self._record: Any = None
        self._timeout_s = 0.05
        self._availability = StateAvailability(
            metrics.breaker_state_available, "shared breaker state", "breaker_state", ", breakers are per pod meanwhile"
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._retired: list[Any] = []

    @property
    def active(self) -> bool:
        return self._client is not None

    def configure(self, table: RoutingTable) -> None:
        state = table.settings.redis
        wanted = state is not None and any(c.shared_breaker for c in table.clusters.values())
        if state == self._state and wanted == self.active:
            return
        if self._client is not None:
            self._retired.append(self._client)
        self._client = self._record = None
        self._state = state
        if wanted and state is not None:
            self._connect(state)

    def _connect(self, state: RedisState) -> None:
        try:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
        except ImportError as exc:  # the compiler (AST262) says so first
            raise RuntimeError("circuitBreaker.shared needs redis-py: install astra-sidecar[redis]") from exc
        url = state.url or (self._env.get(state.url_env) if state.url_env else None)
        if not url:
            raise RuntimeError(f"settings.state.redis: {state.url_env} is not set (it holds the Redis URL)")
        self._timeout_s = state.timeout_ms / 1000.0
        self._client = Redis.from_url(
            url,
            socket_timeout=self._timeout_s,
            socket_connect_timeout=self._timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        self._record = self._client.register_script(_RECORD)
        self._prefix = state.key_prefix

    def _keys(self, cluster: str) -> list[str]:
        base = f"{self._prefix}:breaker:{{{cluster}}}"
        return [f"{base}:failures", f"{base}:open"]

    async def open_ms(self, cluster: str) -> int | None:
        """How long the fleet's breaker of `cluster` stays open (0: not open); None: unknown."""
        if self._client is None:
            return None
        reply = await self._call("read", self._client.pttl(self._keys(cluster)[1]))
        return None if reply is None else max(0, int(reply))

    def failed(self, cluster: str, policy: BreakerPolicy, opened: Opened) -> None:
        """Records one failure in the background; `opened` runs if the fleet's count opened it."""
        if self._client is not None:
            self._background(self._failed(cluster, policy, opened))

    def opened(self, cluster: str, policy: BreakerPolicy) -> None:
        """Publishes an opening this replica decided (TTL: the cooldown)."""
        if self._client is not None:
            self._background(self._opened(cluster, policy))

    async def _failed(self, cluster: str, policy: BreakerPolicy, opened: Opened) -> None:
        args = [policy.window_ms, policy.failure_threshold, policy.cooldown_ms, uuid.uuid4().hex]
        reply = await self._call("record", self._record(keys=self._keys(cluster), args=args))
        if reply:
            opened(int(reply))

    async def _opened(self, cluster: str, policy: BreakerPolicy) -> None:
        await self._call("open", self._client.set(self._keys(cluster)[1], "1", px=policy.cooldown_ms))

    async def _call(self, op: str, call: Any) -> Any:
        try:
            async with asyncio.timeout(self._timeout_s * 2):
                reply = await call
        except Exception as exc:  # redis-py raises ConnectionError, TimeoutError, ResponseError …
            self._metrics.breaker_state_errors.labels(op).inc()
            self._availability.became(False, type(exc).__name__)
            return None
        self._availability.became(True)
        return reply

    def _background(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Waits for every pending write (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        await self.drain()
        for client in [*self._retired, *([self._client] if self._client is not None else [])]:
            await client.aclose()
        self._retired.clear()
        self._client = None
