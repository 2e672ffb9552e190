"""Admission and charging for agents with `quotas`.

Before the plan: the caller's key (the agent's, or per `keyBy`), then one atomic check that
reserves a request, the estimated input tokens (`astra_sidecar.sidecar.policy.context`), the output
reserve, the budget and a stream lease. Refused → 429 in the caller's format (`budget_exhausted`
for a spent budget) with `Retry-After` and `x-ratelimit-*`; the plan never runs, so nothing falls
back. After the answer (a stream at its end) the real usage replaces the estimate, in the
background: a settlement that fails is logged as JSON and counted.

When the shared state cannot be reached the agent's `onStateUnavailable` decides (allow, or 503),
counted, and logged once per transition.
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from astra_sidecar.compiler.table import Agent, RoutingTable
from astra_sidecar.compiler.table.fleet import Budget, QuotaPolicy, RedisState
from astra_sidecar.sidecar.auth.sources import presented_key
from astra_sidecar.sidecar.clock import Clock
from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.fleet.availability import StateAvailability
from astra_sidecar.sidecar.fleet.headers import ratelimit_headers
from astra_sidecar.sidecar.fleet.local import LocalCounters
from astra_sidecar.sidecar.fleet.metrics import FleetMetrics
from astra_sidecar.sidecar.fleet.model import Charge, CounterStore, StateUnavailableError, Verdict
from astra_sidecar.sidecar.policy.context import estimate_tokens, output_reserve
from astra_sidecar.sidecar.protocols.codec import RequestSize

log = logging.getLogger("astra.sidecar.fleet")

_CODES = {"budget": "budget_exhausted", "concurrent_streams": "concurrent_streams_exceeded"}
_NO_KEY = "-"


class QuotaRefusedError(ClientError):
    """A 429 (or a 503 when the state is unavailable and the policy denies) with its headers."""

    def __init__(self, status: int, message: str, code: str, retry_after_ms: int, headers: dict[str, str]):
        super().__init__(status, message, code=code, error_type="rate_limit_error" if status == 429 else None)
        self.failure = replace(self.failure, retry_after_s=retry_after_ms / 1000.0)
        self.headers = headers


def refusal_headers(exc: BaseException) -> dict[str, str]:
    return dict(exc.headers) if isinstance(exc, QuotaRefusedError) else {}


@dataclass(frozen=True, slots=True)
class Ticket:
    """An admitted request's reservation, settled against its real usage at the end."""

    store: CounterStore
    charge: Charge
    agent_id: str
    headers: dict[str, str]


def period(budget: Budget, wall_s: float) -> tuple[str, int]:
    """The budget's calendar period (UTC) at `wall_s`, and the ms left in it."""
    now = time.gmtime(wall_s)
    if budget.period == "day":
        start = calendar.timegm((now.tm_year, now.tm_mon, now.tm_mday, 0, 0, 0))
        return time.strftime("%Y-%m-%d", now), int((start + 86400 - wall_s) * 1000)
    year, month = (now.tm_year + 1, 1) if now.tm_mon == 12 else (now.tm_year, now.tm_mon + 1)
    end = calendar.timegm((year, month, 1, 0, 0, 0))
    return time.strftime("%Y-%m", now), int((end - wall_s) * 1000)


def caller_key(policy: QuotaPolicy, headers: Mapping[str, str]) -> tuple[str, str]:
    """(the key limits are looked up by, the key counters are stored under — a hash, never a secret)."""
    key_by = policy.key_by
    if key_by is None:
        return _NO_KEY, _NO_KEY
    if key_by.header:
        value = headers.get(key_by.header, "")
    else:
        value = headers.get("x-astra-token") or presented_key(headers) or ""
    if not value:
        return _NO_KEY, _NO_KEY
    digest = hashlib.sha256(value.encode()).hexdigest()[:24]
    return (value if key_by.header else _NO_KEY), digest


class QuotaGate:
    """Lives in the shared state (across reloads); `configure` follows the table's store settings."""

    def __init__(
        self,
        metrics: FleetMetrics,
        clock: Clock,
        env: Mapping[str, str],
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._metrics, self._env, self._wall = metrics, env, wall
        self.local = LocalCounters(clock)
        self.redis: CounterStore | None = None
        self._redis_state: RedisState | None = None
        self._availability = StateAvailability(metrics.state_available, "quota state", "quota_state")
        self._tasks: set[asyncio.Task[None]] = set()
        self._retired: list[CounterStore] = []

    def configure(self, table: RoutingTable) -> None:
        state = table.settings.redis
        if state == self._redis_state:
            return
        if self.redis is not None:
            self._retired.append(self.redis)
        self.redis, self._redis_state = None, state
        if state is not None and any(a.quota and a.quota.store == "redis" for a in table.agents.values()):
            from astra_sidecar.sidecar.fleet.redis_store import RedisCounters

            self.redis = RedisCounters(self._url(state), state.key_prefix, state.timeout_ms, self._metrics)

    def _url(self, state: RedisState) -> str:
        url = state.url or (self._env.get(state.url_env) if state.url_env else None)
        if not url:
            raise RuntimeError(f"settings.state.redis: {state.url_env} is not set (it holds the Redis URL)")
        return url

    async def admit(
        self, agent: Agent, headers: Mapping[str, str], size: RequestSize, stream: bool
    ) -> Ticket | None:
        policy = agent.quota
        if policy is None:
            return None
        if policy.key_by is None:
            limits, base = policy.limits, f"{agent.id}:{_NO_KEY}"
        else:
            limit_key, store_key = caller_key(policy, headers)
            limits, base = policy.limits_for(limit_key), f"{agent.id}:{store_key}"
        budget = limits.budget
        period_id, period_left = period(budget, self._wall()) if budget else ("", 0)
        streams = stream and limits.concurrent_streams is not None
        # Estimates only for the dimensions that count tokens: the rest of the cost is the check.
        counts_input = limits.input_tokens is not None or budget is not None
        counts_output = limits.output_tokens is not None or budget is not None
        charge = Charge(
            base=base,
            limits=limits,
            input_tokens=estimate_tokens(size, agent.system_prompt) if counts_input else 0,
            output_tokens=output_reserve(size.output_cap, agent.max_output_tokens) if counts_output else 0,
            lease_id=uuid.uuid4().hex if streams else None,
            lease_ms=agent.request_timeout_ms + 5000,
            period_id=period_id,
            period_left_ms=period_left,
        )
        if policy.store != "redis" or self.redis is None:
            return self._decided(agent.id, self.local, charge, self.local.decide(charge))
        try:
            verdict = await self.redis.admit(charge)
        except StateUnavailableError as exc:
            self._unavailable(agent, policy, exc)
            return None
        self._availability.became(True)
        return self._decided(agent.id, self.redis, charge, verdict)

    def _decided(self, agent_id: str, store: CounterStore, charge: Charge, verdict: Verdict) -> Ticket:
        headers = ratelimit_headers(verdict)
        refused = verdict.refused_by
        if refused is not None:
            code = _CODES.get(refused, "rate_limit_exceeded")
            self._metrics.checks.labels(
                agent_id, "budget_exhausted" if refused == "budget" else "refused"
            ).inc()
            message = f"quota of agent '{agent_id}' exceeded ({refused.replace('_', ' ')}): retry later"
            if refused == "budget":
                message = f"token budget of agent '{agent_id}' is spent for this period"
            raise QuotaRefusedError(429, message, code, verdict.retry_after_ms, headers)
        self._metrics.checks.labels(agent_id, "admitted").inc()
        self._metrics.usage.labels(agent_id, "requests").inc()
        return Ticket(store, charge, agent_id, headers)

    def _unavailable(self, agent: Agent, policy: QuotaPolicy, exc: StateUnavailableError) -> None:
        self._availability.became(False, str(exc))
        allow = policy.on_state_unavailable == "allow"
        self._metrics.checks.labels(agent.id, "unavailable_allowed" if allow else "unavailable_denied").inc()
        if not allow:
            raise QuotaRefusedError(
                503, "the quota state is unavailable: retry later", "quota_state_unavailable", 1000, {}
            )

    def settle(self, ticket: Ticket | None, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        """Replaces the reservation by the real usage (none known: the estimate stays charged)."""
        if ticket is None:
            return
        charge = ticket.charge
        input_delta = 0 if prompt_tokens is None else prompt_tokens - charge.input_tokens
        output_delta = 0 if completion_tokens is None else completion_tokens - charge.output_tokens
        self._metrics.usage.labels(ticket.agent_id, "input_tokens").inc(charge.input_tokens + input_delta)
        self._metrics.usage.labels(ticket.agent_id, "output_tokens").inc(charge.output_tokens + output_delta)
        limits = charge.limits
        tokens_counted = limits.input_tokens or limits.output_tokens or limits.budget
        if not ((tokens_counted and (input_delta or output_delta)) or charge.lease_id):
            return
        if ticket.store is self.local:
            self.local.charge(charge, input_delta, output_delta)  # in-process: at once, no task
            return
        task = asyncio.get_running_loop().create_task(self._settle(ticket, input_delta, output_delta))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, ticket: Ticket, input_delta: int, output_delta: int) -> None:
        try:
            await ticket.store.settle(ticket.charge, input_delta, output_delta)
        except Exception as exc:
            self._metrics.background_failures.labels("quota_settle").inc()
            log.error(
                "quota settlement failed: %s",
                exc,
                extra={"event": "quota_settle_failed", "agent": ticket.agent_id},
            )

    async def drain(self) -> None:
        """Waits for every pending settlement (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def close(self) -> None:
        await self.drain()
        for store in [*self._retired, *([self.redis] if self.redis else [])]:
            await store.close()
        self._retired.clear()
