"""The attempt plan of one request: retries, circuit breakers, fallbacks and the deadline.

For each cluster in the agent's plan (primary first):
  1. ask its breaker for a permit; refused (open, or a half-open probe already running) → next;
  2. attempt (`astra_sidecar.sidecar.resilience.attempt`); on success report it to the breaker and return;
  3. on failure report it (provider-side failures count, the caller's own mistakes do not), then
     retry the same cluster while the failure is retryable, the status is in `retryOn` (network
     errors if `retryNetworkErrors`; a malformed answer counts as 502), retries remain and the
     breaker is still closed — after the backoff of `astra_sidecar.compiler.table.retry.backoff_s`, or the
     provider's Retry-After when it gives one (a Retry-After beyond `maxRetryAfterMs` skips to
     the fallback instead of waiting);
  4. a failure that is the caller's (400, 413, 422…) ends the request at once: no fallback would
     answer differently. Anything else moves to the next cluster.
The deadline (`requestTimeoutMs`) bounds all of it; a backoff that would outlive it is not taken.

A plan entry that is a pool (`astra_sidecar.sidecar.resilience.pool`) picks a member for each
attempt among those whose breaker admits; a retryable failure is retried at once on another
member (counted as a retry of the entry), and only on the same member — after the backoff — when
no other is left. The entry falls back when its retries are spent or no member's breaker admits.

The run ends in an `Outcome`: the value, or the error that ended it, with the cluster (and pool
member) that served and the attempts made. Streams follow the same plan up to the first chunk; from then on the answer
belongs to that cluster and a failure becomes an in-stream error (see `astra_sidecar.sidecar.serving.relay`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Generic, TypeVar

from astra_sidecar.compiler.table.retry import backoff_s
from astra_sidecar.sidecar.clock import Clock
from astra_sidecar.sidecar.errors import (
    AllClustersOpenError,
    AstraError,
    BreakerOpenError,
    DeadlineExceededError,
    UpstreamError,
    UpstreamMalformedError,
    UpstreamNetworkError,
    UpstreamStatusError,
    UpstreamTooLargeError,
    network_failure,
)
from astra_sidecar.sidecar.metrics import Metrics
from astra_sidecar.sidecar.protocols.base import Failure
from astra_sidecar.sidecar.resilience.breaker import OPEN, Permit
from astra_sidecar.sidecar.resilience.pool import PoolRuntime

if TYPE_CHECKING:  # types only: the runtime imports the protocol registry
    from astra_sidecar.sidecar.runtime import AgentRuntime, ClusterRuntime

__all__ = ["Deadline", "Outcome", "Plan", "backoff_s", "run_plan"]

T = TypeVar("T")
Attempt = Callable[["ClusterRuntime", Permit], Awaitable[T]]

_NO_CREDENTIALS = "credentials_missing"

#: Upstream statuses that are the caller's own mistake: returned at once, never a fallback.
_CALLER_STATUSES = frozenset({400, 413, 422})


class Deadline:
    __slots__ = ("_clock", "expires", "timeout_ms")

    def __init__(self, clock: Clock, timeout_ms: int) -> None:
        self._clock = clock
        self.timeout_ms = timeout_ms
        self.expires = clock.now() + timeout_ms / 1000.0

    def remaining(self) -> float:
        return self.expires - self._clock.now()

    def check(self) -> float:
        left = self.remaining()
        if left <= 0:
            raise DeadlineExceededError(self.timeout_ms)
        return left


@dataclass(slots=True)  # built per request: a frozen one costs 4x to build
class Plan:
    """One request's plan: the agent (its clusters, retry policy and timeouts) and the deadline."""

    agent: AgentRuntime
    deadline: Deadline
    clock: Clock
    rng: random.Random
    metrics: Metrics


@dataclass(slots=True)  # built per request: a frozen one costs 4x to build
class Outcome(Generic[T]):
    """How a plan ended: `value` when a cluster answered, else the `error` the caller gets."""

    value: T | None
    error: AstraError | None
    served_by: ClusterRuntime | None
    attempts: int
    failures: tuple[Failure, ...] = ()
    #: The pool member that served (its `id`), when the entry that served is a pool.
    member: str | None = None

    def result(self) -> T:
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


@dataclass(slots=True)
class _Tally:
    attempts: int = 0
    failures: list[Failure] = field(default_factory=list)
    #: False for streams: the attempt that opened one is counted when the stream ends.
    count_success: bool = True


async def run_plan(plan: Plan, attempt: Attempt[T], *, stream: bool = False) -> Outcome[T]:
    """Runs the plan. With `stream`, the attempt that produced the first events is left for the
    caller to count when the stream ends (`report_stream_end`): a stream cut after its first byte
    counts as the failure that cut it, not as `ok`."""
    tally = _Tally(count_success=not stream)
    try:
        value, served_by, member = await _walk(plan, attempt, tally)
    except AstraError as exc:
        return Outcome(None, exc, None, tally.attempts, tuple(tally.failures))
    return Outcome(value, None, served_by, tally.attempts, tuple(tally.failures), member)


async def _walk(plan: Plan, attempt: Attempt[T], tally: _Tally) -> tuple[T, ClusterRuntime, str | None]:
    last: AstraError | None = None
    agent_id = plan.agent.agent.id
    for index, cluster in enumerate(plan.agent.plan):
        if index:
            plan.metrics.fallbacks.labels(agent_id, cluster.cluster.provider).inc()
        pool = plan.agent.pools.get(cluster.cluster.key)
        try:
            if pool is not None:
                return await _try_pool(plan, pool, attempt, tally)
            return await _try_cluster(plan, cluster, attempt, tally), cluster, None
        except BreakerOpenError as exc:
            plan.metrics.attempts.labels(agent_id, cluster.cluster.provider, "breaker_open").inc()
            last = last or exc
        except UpstreamError as exc:
            last = exc
            if not _falls_back(exc, cluster):
                raise
    if last is None or isinstance(last, BreakerOpenError):
        raise AllClustersOpenError()
    raise _combined(last, tally.failures)


async def _try_cluster(plan: Plan, cluster: ClusterRuntime, attempt: Attempt[T], tally: _Tally) -> T:
    for retry in range(plan.agent.agent.retry.max_retries + 1):
        remaining = plan.deadline.check()
        if cluster.breaker.store is not None:
            await cluster.breaker.sync()  # `circuitBreaker.shared`: the fleet's openings count here
        permit = cluster.breaker.acquire()
        if permit is None:
            raise BreakerOpenError(cluster.cluster.key)
        try:
            return await _attempt_once(plan, cluster, permit, attempt, tally, retry, remaining)
        except UpstreamError as exc:
            delay = _retry_delay(plan, cluster, exc, retry)
            if delay is None:
                raise
            await plan.clock.sleep(delay)
    raise AssertionError("unreachable: the last retry either returns or raises")


async def _try_pool(
    plan: Plan, pool: PoolRuntime, attempt: Attempt[T], tally: _Tally
) -> tuple[T, ClusterRuntime, str]:
    """The entry's retries spread over its members: another member at once, else the same one
    after its backoff."""
    failed: list[str] = []
    for retry in range(plan.agent.agent.retry.max_retries + 1):
        remaining = plan.deadline.check()
        await pool.sync_breakers()
        picked = pool.pick(plan.rng, failed)
        if picked is None:
            raise BreakerOpenError(pool.members[0].cluster.cluster.key)
        member, permit = picked
        try:
            value = await _attempt_once(plan, member.cluster, permit, attempt, tally, retry, remaining)
        except UpstreamError as exc:
            failed.append(member.id)
            retries_left = retry < plan.agent.agent.retry.max_retries
            if retries_left and _should_retry(exc, plan) and pool.untried(failed):
                continue
            delay = _retry_delay(plan, member.cluster, exc, retry)
            if delay is None:
                raise
            await plan.clock.sleep(delay)
            continue
        return value, member.cluster, member.id
    raise AssertionError("unreachable: the last retry either returns or raises")


async def _attempt_once(
    plan: Plan,
    cluster: ClusterRuntime,
    permit: Permit,
    attempt: Attempt[T],
    tally: _Tally,
    retry: int,
    remaining: float,
) -> T:
    """One attempt on `cluster` under `permit`, counted and reported to its breaker."""
    agent_id, provider = plan.agent.agent.id, cluster.cluster.provider
    tally.attempts += 1
    if retry:
        plan.metrics.retries.labels(agent_id, provider).inc()
    started = plan.clock.now()
    try:
        result = await _bounded(plan, remaining, attempt(cluster, permit))
    except DeadlineExceededError:
        permit.failure()
        # Counted like an attempt that ran out of `attemptMs`: it timed out upstream.
        plan.metrics.attempts.labels(agent_id, provider, "network").inc()
        raise
    except UpstreamError as exc:
        _report(permit, exc.failure)
        tally.failures.append(exc.failure)
        if not exc.reached_upstream:
            tally.attempts -= 1
        plan.metrics.attempts.labels(agent_id, provider, _outcome_label(exc)).inc()
        raise
    except BaseException:
        permit.release()
        raise
    finally:
        plan.metrics.upstream_seconds.labels(provider).observe(max(0.0, plan.clock.now() - started))
    if tally.count_success:
        plan.metrics.attempts.labels(agent_id, provider, "ok").inc()
    return result


async def _bounded(plan: Plan, remaining: float, attempt: Awaitable[T]) -> T:
    """One attempt under one timer: `attemptMs`, or what is left of the deadline if less.

    A whole answer must arrive, or a stream's first chunk, within the attempt's time; running out
    of it is a retryable network failure, running out of the deadline ends the request."""
    attempt_s = plan.agent.agent.timeouts.attempt_ms / 1000.0
    budget = min(attempt_s, remaining)
    try:
        async with asyncio.timeout(budget):
            return await attempt
    except TimeoutError as exc:
        if budget >= remaining:
            raise DeadlineExceededError(plan.deadline.timeout_ms) from exc
        raise UpstreamNetworkError(network_failure("upstream answer timed out", timeout=True)) from exc


def _combined(last: AstraError, failures: list[Failure]) -> AstraError:
    """The error that ends a plan: when no cluster had credentials, one naming them all."""
    missing = [f.message for f in failures if f.code == _NO_CREDENTIALS]
    if len(missing) < 2 or len(missing) != len(failures):
        return last
    details = "; ".join(dict.fromkeys(missing))
    return AstraError(replace(last.failure, message=f"no provider of this agent has credentials: {details}"))


def _outcome_label(exc: UpstreamError) -> str:
    if isinstance(exc, UpstreamNetworkError):
        return "network"
    if isinstance(exc, UpstreamTooLargeError):
        return "too_large"
    return "malformed" if isinstance(exc, UpstreamMalformedError) else "error"


def _report(permit: Permit, failure: Failure) -> None:
    """Tells the breaker how an attempt ended: provider-side failures count against it."""
    if failure.breaker_counts:
        permit.failure()
    else:
        permit.release()


def _should_retry(exc: UpstreamError, plan: Plan) -> bool:
    policy = plan.agent.agent.retry
    if not exc.failure.retryable:
        return False
    if isinstance(exc, UpstreamNetworkError):
        return policy.retry_network_errors
    return exc.failure.status in policy.retry_on


def _retry_delay(plan: Plan, cluster: ClusterRuntime, exc: UpstreamError, retry: int) -> float | None:
    """Seconds to wait before retrying this cluster, or None to stop retrying it."""
    policy = plan.agent.agent.retry
    if retry >= policy.max_retries or not _should_retry(exc, plan):
        return None
    if cluster.breaker.state == OPEN:
        return None
    delay = backoff_s(policy, retry, plan.rng)
    hint = exc.failure.retry_after_s
    if hint is not None:
        if hint * 1000.0 > policy.max_retry_after_ms:
            return None
        delay = hint
    if delay >= plan.deadline.remaining():
        return None
    return delay


def _falls_back(exc: AstraError, cluster: ClusterRuntime) -> bool:
    """False when the failure is the caller's own: a bad request, or — where the caller's own key
    is forwarded (`passthrough`) — a key the provider refused. Another provider would not help,
    and must not serve the call on the sidecar's key instead."""
    if not isinstance(exc, UpstreamStatusError):
        return True
    status = exc.failure.status
    if status in _CALLER_STATUSES:
        return False
    return not (status in (401, 403) and cluster.cluster.credentials.mode == "passthrough")


def report_stream_end(plan: Plan, cluster: ClusterRuntime, permit: Permit, failure: Failure | None) -> None:
    """Tells the breaker how a stream that reached the client ended, and counts its attempt."""
    count_stream_attempt(plan, cluster, failure)
    if failure is None:
        permit.success()
    else:
        _report(permit, failure)


def count_stream_attempt(plan: Plan, cluster: ClusterRuntime, failure: Failure | None) -> None:
    """The attempt of a stream (`run_plan(..., stream=True)`), counted by how the stream ended:
    `ok`, or the outcome of the failure after the first byte (a cut or a timeout is `network`, as
    before the first byte)."""
    label = "ok" if failure is None else _STREAM_OUTCOMES.get(failure.code or "", "error")
    plan.metrics.attempts.labels(plan.agent.agent.id, cluster.cluster.provider, label).inc()


#: A stream's failure by its code (mid-stream errors all arrive as `UpstreamStreamError`s).
_STREAM_OUTCOMES = {
    "upstream_timeout": "network",
    "upstream_unreachable": "network",
    "deadline_exceeded": "network",
    "upstream_malformed": "malformed",
    "upstream_too_large": "too_large",
    "upstream_refused": "too_large",
}
