"""The attempt plan of one request: retries, circuit breakers, fallbacks and the deadline.

For each cluster in the agent's plan (primary first):
  1. ask its breaker for a permit; refused (open, or a half-open probe already running) → next;
  2. attempt; on success report it to the breaker and return;
  3. on failure report it (provider-side failures count, the caller's own mistakes do not), then
     retry the same cluster while the failure is retryable, the status is in `retryOn` (network
     errors if `retryNetworkErrors`), retries remain and the breaker is still closed — after an
     exponential backoff with jitter, or the provider's Retry-After when it gives one (a
     Retry-After beyond `maxRetryAfterMs` skips to the fallback instead of waiting);
  4. a failure that is the caller's (400, 413, 422…) ends the request at once: no fallback would
     answer differently. Anything else moves to the next cluster.
The deadline (`requestTimeoutMs`) bounds all of it; a backoff that would outlive it is not taken.

Streams follow the same plan up to the first chunk; from then on the answer belongs to that
cluster and a failure becomes an in-stream error (see `sidecar.serving`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from compiler.table import RetryPolicy
from sidecar.clock import Clock
from sidecar.errors import (
    AllClustersOpenError,
    AstraError,
    BreakerOpenError,
    DeadlineExceededError,
    UpstreamError,
    UpstreamMalformedError,
    UpstreamNetworkError,
    UpstreamStatusError,
    network_failure,
    without_credentials,
)
from sidecar.metrics import Metrics
from sidecar.policy.agent import PreparedRequest
from sidecar.protocols.base import Body, Completion, StreamTranslator, UpstreamRequest
from sidecar.resilience.breaker import OPEN, Permit
from sidecar.runtime import AgentRuntime, ClusterRuntime
from sidecar.upstream import AttemptTimeouts, UpstreamResponse

T = TypeVar("T")

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


@dataclass(frozen=True, slots=True)
class BuiltAttempt:
    """One attempt's upstream request, and how to read its answer: `native` answers go back to
    the client as they are; the others are OpenAI bytes from the cluster's adapter."""

    request: UpstreamRequest
    body: Body
    native: bool = False


class CallShape(Protocol):
    """How one client call becomes an attempt on a given cluster, and how its answer is read."""

    async def build(self, cluster: ClusterRuntime, inbound: Mapping[str, str]) -> BuiltAttempt: ...

    def parse(self, cluster: ClusterRuntime, built: BuiltAttempt, raw: bytes) -> Completion: ...

    def translator(self, cluster: ClusterRuntime, built: BuiltAttempt) -> StreamTranslator: ...


class OpenAICall:
    """An OpenAI chat request: the agent's policy per cluster, then the cluster's adapter."""

    __slots__ = ("_agent", "prepared")

    def __init__(self, agent: AgentRuntime, prepared: PreparedRequest) -> None:
        self._agent = agent
        self.prepared = prepared

    async def build(self, cluster: ClusterRuntime, inbound: Mapping[str, str]) -> BuiltAttempt:
        body = self._agent.policy.for_cluster(self.prepared, cluster.cluster)
        auth = await cluster.credentials.material(inbound)
        return BuiltAttempt(
            cluster.adapter.build_request(cluster.cluster, self._agent.agent, body, auth), body
        )

    def parse(self, cluster: ClusterRuntime, built: BuiltAttempt, raw: bytes) -> Completion:
        return cluster.adapter.parse_response(cluster.cluster, built.body, raw)

    def translator(self, cluster: ClusterRuntime, built: BuiltAttempt) -> StreamTranslator:
        return cluster.adapter.stream_translator(cluster.cluster, built.body)


@dataclass(slots=True)
class RequestContext:
    agent: AgentRuntime
    shape: CallShape
    inbound: Mapping[str, str]
    clock: Clock
    rng: random.Random
    metrics: Metrics
    deadline: Deadline
    started: float = 0.0
    removed_tools: tuple[str, ...] = ()
    attempts: int = 0
    served_by: ClusterRuntime | None = None


@dataclass(slots=True)
class OpenStream:
    """An upstream stream that has produced its first chunk(s) and now belongs to the client."""

    cluster: ClusterRuntime
    permit: Permit
    translator: StreamTranslator
    first: list[bytes]
    first_raw: bytes
    native: bool
    chunks: AsyncIterator[bytes]
    exits: contextlib.AsyncExitStack


def backoff_s(policy: RetryPolicy, retry: int, rng: random.Random) -> float:
    """Exponential backoff for the `retry`-th retry (0-based), jittered down by up to `jitter`."""
    delay = min(policy.base_delay_ms * (1 << retry), policy.max_delay_ms) / 1000.0
    return delay * (1.0 - policy.jitter * rng.random())


def _should_retry(exc: UpstreamError, policy: RetryPolicy) -> bool:
    failure = exc.failure
    if not failure.retryable:
        return False
    if isinstance(exc, UpstreamNetworkError):
        return policy.retry_network_errors
    return failure.status in policy.retry_on


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


async def run_plan(ctx: RequestContext, attempt: Callable[[ClusterRuntime, Permit], Awaitable[T]]) -> T:
    last: AstraError | None = None
    for index, cluster in enumerate(ctx.agent.plan):
        if index:
            ctx.metrics.fallbacks.labels(ctx.agent.agent.id, cluster.cluster.provider).inc()
        try:
            result = await _try_cluster(ctx, cluster, attempt)
        except BreakerOpenError as exc:
            ctx.metrics.attempts.labels(ctx.agent.agent.id, cluster.cluster.provider, "breaker_open").inc()
            last = last or exc
            continue
        except UpstreamError as exc:
            last = exc
            if not _falls_back(exc, cluster):
                raise
            continue
        ctx.served_by = cluster
        return result
    if last is None or isinstance(last, BreakerOpenError):
        raise AllClustersOpenError()
    raise last


async def _try_cluster(
    ctx: RequestContext, cluster: ClusterRuntime, attempt: Callable[[ClusterRuntime, Permit], Awaitable[T]]
) -> T:
    retry_policy = ctx.agent.agent.retry
    agent_id, provider = ctx.agent.agent.id, cluster.cluster.provider
    for retry in range(retry_policy.max_retries + 1):
        remaining = ctx.deadline.check()
        permit = cluster.breaker.acquire()
        if permit is None:
            raise BreakerOpenError(cluster.cluster.key)
        ctx.attempts += 1
        if retry:
            ctx.metrics.retries.labels(agent_id, provider).inc()
        started = ctx.clock.now()
        try:
            result = await _bounded(ctx, remaining, attempt(cluster, permit))
        except DeadlineExceededError:
            permit.failure()
            # Counted like an attempt that ran out of `attemptMs`: it timed out upstream.
            ctx.metrics.attempts.labels(agent_id, provider, "network").inc()
            raise
        except UpstreamError as exc:
            _report(permit, exc)
            outcome = _outcome_label(exc)
            ctx.metrics.attempts.labels(agent_id, provider, outcome).inc()
            delay = _retry_delay(ctx, cluster, exc, retry)
            if delay is None:
                raise
            await ctx.clock.sleep(delay)
            continue
        except BaseException:
            permit.release()
            raise
        finally:
            ctx.metrics.upstream_seconds.labels(provider).observe(max(0.0, ctx.clock.now() - started))
        ctx.metrics.attempts.labels(agent_id, provider, "ok").inc()
        return result
    raise AssertionError("unreachable: the last retry either returns or raises")


async def _bounded(ctx: RequestContext, remaining: float, attempt: Awaitable[T]) -> T:
    """One attempt under one timer: `attemptMs`, or what is left of the deadline if less.

    A whole answer must arrive, or a stream's first chunk, within the attempt's time; running out
    of it is a retryable network failure, running out of the deadline ends the request."""
    attempt_s = ctx.agent.agent.timeouts.attempt_ms / 1000.0
    budget = min(attempt_s, remaining)
    try:
        async with asyncio.timeout(budget):
            return await attempt
    except TimeoutError as exc:
        if budget >= remaining:
            raise DeadlineExceededError(ctx.deadline.timeout_ms) from exc
        raise UpstreamNetworkError(network_failure("upstream answer timed out", timeout=True)) from exc


def _outcome_label(exc: UpstreamError) -> str:
    if isinstance(exc, UpstreamNetworkError):
        return "network"
    return "malformed" if isinstance(exc, UpstreamMalformedError) else "error"


def _report(permit: Permit, exc: UpstreamError) -> None:
    if exc.failure.breaker_counts:
        permit.failure()
    else:
        permit.release()


def _retry_delay(
    ctx: RequestContext, cluster: ClusterRuntime, exc: UpstreamError, retry: int
) -> float | None:
    """Seconds to wait before retrying this cluster, or None to stop retrying it."""
    policy = ctx.agent.agent.retry
    if retry >= policy.max_retries or not _should_retry(exc, policy):
        return None
    if cluster.breaker.state == OPEN:
        return None
    delay = backoff_s(policy, retry, ctx.rng)
    hint = exc.failure.retry_after_s
    if hint is not None:
        if hint * 1000.0 > policy.max_retry_after_ms:
            return None
        delay = hint
    if delay >= ctx.deadline.remaining():
        return None
    return delay


def _timeouts(ctx: RequestContext) -> AttemptTimeouts:
    t = ctx.agent.agent.timeouts
    return AttemptTimeouts(connect_s=t.connect_ms / 1000.0, idle_s=t.stream_idle_ms / 1000.0)


async def _upstream_failure(
    cluster: ClusterRuntime, response: UpstreamResponse, request: UpstreamRequest
) -> UpstreamStatusError:
    raw = await response.read()
    failure = cluster.adapter.classify_error(cluster.cluster, response.status, response.headers, raw)
    return UpstreamStatusError(without_credentials(failure, request.headers), cluster.cluster.key)


async def complete(ctx: RequestContext) -> tuple[Completion, bool]:
    """A whole (non-streamed) answer through the plan, and whether it is native (not OpenAI)."""

    async def attempt(cluster: ClusterRuntime, permit: Permit) -> tuple[Completion, bool]:
        built = await ctx.shape.build(cluster, ctx.inbound)
        async with cluster.transport.open(cluster.cluster, built.request, _timeouts(ctx)) as response:
            if response.status >= 300:
                raise await _upstream_failure(cluster, response, built.request)
            raw = await response.read()
        completion = ctx.shape.parse(cluster, built, raw)
        permit.success()
        return completion, built.native

    return await run_plan(ctx, attempt)


async def open_stream(ctx: RequestContext) -> OpenStream:
    """Runs the plan until one cluster has produced the first chunk of a streamed answer."""

    async def attempt(cluster: ClusterRuntime, permit: Permit) -> OpenStream:
        built = await ctx.shape.build(cluster, ctx.inbound)
        exits = contextlib.AsyncExitStack()
        try:
            response = await exits.enter_async_context(
                cluster.transport.open(cluster.cluster, built.request, _timeouts(ctx))
            )
            if response.status >= 300:
                raise await _upstream_failure(cluster, response, built.request)
            translator = ctx.shape.translator(cluster, built)
            chunks = response.chunks()
            first, first_raw = await _first_chunks(chunks, translator)
        except BaseException:
            await exits.aclose()
            raise
        return OpenStream(cluster, permit, translator, first, first_raw, built.native, chunks, exits)

    return await run_plan(ctx, attempt)


async def _first_chunks(
    chunks: AsyncIterator[bytes], translator: StreamTranslator
) -> tuple[list[bytes], bytes]:
    """Reads until the translator yields its first chunk: (those chunks, the raw bytes read)."""
    raw: list[bytes] = []
    async for data in chunks:
        raw.append(data)
        out = translator.feed(data)
        if out:
            return out, b"".join(raw)
    return translator.finish(), b"".join(raw)
