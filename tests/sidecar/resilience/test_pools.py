"""Pools (sidecar/resilience/pool.py, plan.py): several deployments behind one plan entry.

Member selection is checked on `PoolRuntime` itself over many picks (seeded random), and the rest
through the app: fake OpenAI upstreams (tests/fakes/openai_upstream.py), one per member, called
through the official SDK; the fakes count what reached them.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from astra_sidecar.compiler.table import BreakerPolicy, Cluster
from astra_sidecar.sidecar.clock import ManualClock
from astra_sidecar.sidecar.metrics import Metrics
from astra_sidecar.sidecar.resilience.breaker import OPEN, ClusterBreaker
from astra_sidecar.sidecar.resilience.pool import PoolMemberRuntime, PoolRuntime
from tests.fakes.openai_upstream import FakeOpenAI, Step, completion, error, text_chunks
from tests.processes import eventually
from tests.sidecar.harness import Sidecar, compile_yaml, running_sidecar
from tests.sidecar.resilience.two_providers import chat

ENV = {"OPENAI_API_KEY": "sk-east", "WEST_KEY": "sk-west"}


# --- selection on PoolRuntime ----------------------------------------------------------------------


class _Cluster:
    """What the pool reads of a cluster runtime: its key and its breaker."""

    def __init__(self, key: str, clock: ManualClock) -> None:
        self.cluster = Cluster.__new__(Cluster)
        object.__setattr__(self.cluster, "key", key)
        self.breaker = ClusterBreaker(key, BreakerPolicy(failure_threshold=1), clock)


def _pool(strategy: str, weights: dict[str, float], in_flight: dict[str, int] | None = None) -> PoolRuntime:
    clock = ManualClock()
    members = tuple(PoolMemberRuntime(name, _Cluster(name, clock), w) for name, w in weights.items())  # type: ignore[arg-type]
    counts = in_flight or {}
    return PoolRuntime("chat", "primary", strategy, members, lambda key: counts.get(key, 0), Metrics().fleet)  # type: ignore[arg-type]


def _picks(pool: PoolRuntime, times: int, seed: int = 11) -> Counter[str]:
    rng = random.Random(seed)
    chosen: Counter[str] = Counter()
    for _ in range(times):
        picked = pool.pick(rng)
        assert picked is not None
        member, permit = picked
        permit.success()
        chosen[member.id] += 1
    return chosen


def test_weighted_picks_follow_the_weights_within_three_percent() -> None:
    chosen = _picks(_pool("weighted", {"east": 3, "west": 1}), 4000)
    assert abs(chosen["east"] / 4000 - 0.75) <= 0.03
    assert abs(chosen["west"] / 4000 - 0.25) <= 0.03


def test_weighted_picks_among_three_members() -> None:
    chosen = _picks(_pool("weighted", {"a": 1, "b": 2, "c": 5}), 4000)
    for name, share in (("a", 1 / 8), ("b", 2 / 8), ("c", 5 / 8)):
        assert abs(chosen[name] / 4000 - share) <= 0.03, chosen


def test_a_member_whose_breaker_is_open_is_skipped_and_counted() -> None:
    pool = _pool("weighted", {"east": 3, "west": 1})
    east = pool.members[0].cluster.breaker
    permit = east.acquire()
    assert permit is not None
    permit.failure()
    assert east.state == OPEN
    chosen = _picks(pool, 400)
    assert chosen == Counter({"west": 400})
    skips = pool.metrics.pool_skips.labels("chat", "primary", "east", "breaker_open")
    assert 0 < skips.value <= 400  # counted whenever east came first in the weighted order


def test_least_in_flight_picks_the_member_with_fewest_requests_in_flight() -> None:
    pool = _pool("least-in-flight", {"east": 1, "west": 1, "north": 1}, {"east": 2, "west": 0, "north": 1})
    assert _picks(pool, 50) == Counter({"west": 50})


def test_members_that_failed_in_this_request_come_last() -> None:
    pool = _pool("weighted", {"east": 1000, "west": 1})
    rng = random.Random(3)
    assert [m.id for m in pool.order(rng, failed={"east"})] == ["west", "east"]


# --- through the app -------------------------------------------------------------------------------


def pool_yaml(
    east: FakeOpenAI,
    west: FakeOpenAI,
    *,
    strategy: str = "weighted",
    weights: tuple[int, int] = (3, 1),
    threshold: int = 5,
    fallback: str = "",
) -> str:
    weight_east = f", weight: {weights[0]}" if strategy == "weighted" else ""
    weight_west = f", weight: {weights[1]}" if strategy == "weighted" else ""
    return f"""
        settings:
          retry: {{maxRetries: 2, baseDelayMs: 100, maxDelayMs: 1000, jitter: 0}}
          circuitBreaker: {{failureThreshold: {threshold}, windowMs: 60000, cooldownMs: 60000}}
        agents:
          chat:
            model:
              provider: openai
              modelId: gpt-pool
              pool:
                strategy: {strategy}
                members:
                  - {{id: east, endpoint: "{east.url}/v1"{weight_east}}}
                  - {{id: west, endpoint: "{west.url}/v1", apiKeyEnv: WEST_KEY{weight_west}}}
              {fallback}
        """


@pytest.fixture
async def members() -> AsyncIterator[tuple[FakeOpenAI, FakeOpenAI]]:
    east = await FakeOpenAI(Step(body=completion("from east"))).start()
    west = await FakeOpenAI(Step(body=completion("from west"))).start()
    try:
        yield east, west
    finally:
        await east.close()
        await west.close()


def _selections(sidecar: Sidecar, member: str) -> float:
    return sidecar.metric(
        "astra_pool_selections_total", {"agent": "chat", "pool": "primary", "member": member}
    )


async def test_requests_spread_by_weight_and_each_answer_names_its_member(
    tmp_path: Path, members: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    east, west = members
    table = compile_yaml(tmp_path, pool_yaml(east, west))
    served: Counter[str] = Counter()
    async with running_sidecar(table, env=ENV) as sidecar:
        for _ in range(200):
            raw = await chat(sidecar)
            member = raw.headers["x-astra-pool-member"]
            text = raw.parse().choices[0].message.content
            assert text == f"from {member}"
            served[member] += 1
        assert (_selections(sidecar, "east"), _selections(sidecar, "west")) == (
            served["east"],
            served["west"],
        )
    assert (len(east.received), len(west.received)) == (served["east"], served["west"])
    assert 0.65 <= served["east"] / 200 <= 0.85  # 3:1; the exact shares are checked on 4,000 picks above
    # Each member authenticates with its own key.
    assert {r.headers["Authorization"] for r in east.received} == {"Bearer sk-east"}
    assert {r.headers["Authorization"] for r in west.received} == {"Bearer sk-west"}


async def test_a_failing_member_is_retried_at_once_on_another_member(
    tmp_path: Path, members: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    east, west = members
    east.script = [error(503, "east down")]
    table = compile_yaml(tmp_path, pool_yaml(east, west, weights=(1000, 1)))
    clock = ManualClock()
    async with running_sidecar(table, env=ENV, clock=clock, seed=5) as sidecar:
        raw = await chat(sidecar)
        retries = sidecar.metric("astra_retries_total", {"agent": "chat", "provider": "openai"})
    assert raw.headers["x-astra-pool-member"] == "west"
    assert raw.headers["x-astra-attempts"] == "2"
    assert (len(east.received), len(west.received)) == (1, 1)
    assert clock.sleeps == []  # another member: no backoff
    assert retries == 1


async def test_a_member_whose_breaker_opened_gets_no_more_requests(
    tmp_path: Path, members: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    east, west = members
    east.script = [error(500, "east broken")]
    table = compile_yaml(tmp_path, pool_yaml(east, west, weights=(1000, 1), threshold=1))
    async with running_sidecar(table, env=ENV, seed=5) as sidecar:
        for _ in range(5):
            raw = await chat(sidecar)
            assert raw.headers["x-astra-pool-member"] == "west"
        skipped = sidecar.metric(
            "astra_pool_skips_total",
            {"agent": "chat", "pool": "primary", "member": "east", "reason": "breaker_open"},
        )
        breakers = sidecar.state.shared.breakers
        east_key = next(k for k in breakers if east.url in k)
        west_key = next(k for k in breakers if west.url in k)
        assert (breakers[east_key].state, breakers[west_key].state) == (OPEN, "closed")
    assert len(east.received) == 1  # only the first failure reached it
    assert len(west.received) == 5
    assert skipped >= 4  # east comes first (weight 1000) for nearly every request, and is skipped


async def test_when_every_member_fails_the_plan_moves_to_the_fallback(
    tmp_path: Path, members: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    east, west = members
    east.script = [error(503)]
    west.script = [error(503)]
    fallback = "fallback: {provider: mock, modelId: m, mock: {reply: from mock}}"
    table = compile_yaml(tmp_path, pool_yaml(east, west, fallback=fallback))
    clock = ManualClock()
    async with running_sidecar(table, env=ENV, clock=clock) as sidecar:
        raw = await chat(sidecar)
    assert raw.parse().choices[0].message.content == "from mock"
    assert raw.headers["x-astra-provider"] == "mock"
    assert "x-astra-pool-member" not in raw.headers
    # maxRetries 2: east and west at once, then one of them again after the backoff of the
    # entry's second retry (100 ms doubling: 200 ms).
    assert len(east.received) + len(west.received) == 3
    assert min(len(east.received), len(west.received)) == 1
    assert clock.sleeps == [0.2]
    assert raw.headers["x-astra-attempts"] == "4"


async def test_least_in_flight_sends_the_next_request_to_the_idle_member(
    tmp_path: Path, members: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    east, west = members
    east.script = [Step(kind="hang")]
    west.script = [Step(kind="hang")]
    table = compile_yaml(tmp_path, pool_yaml(east, west, strategy="least-in-flight"))
    async with running_sidecar(table, env=ENV) as sidecar:
        held = asyncio.create_task(chat(sidecar))
        assert await eventually(lambda: len(east.received) + len(west.received) == 1)
        busy, idle = (east, west) if east.received else (west, east)
        idle.script = [Step(body=completion("idle answered"))]
        raw = await chat(sidecar)
        assert raw.parse().choices[0].message.content == "idle answered"
        assert len(busy.received) == 1
        busy.release.set()  # the held request's member answers 500: it is retried on the idle one
        await held


async def test_a_stream_names_its_member_and_a_failed_member_before_the_first_chunk_is_skipped(
    tmp_path: Path, members: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    east, west = members
    east.script = [error(502, "east bad gateway")]
    west.script = [Step(kind="sse", chunks=text_chunks(["from ", "west"]))]
    table = compile_yaml(tmp_path, pool_yaml(east, west, weights=(1000, 1)))
    async with running_sidecar(table, env=ENV, seed=5) as sidecar:
        client = sidecar.client()
        async with client.chat.completions.with_streaming_response.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
        ) as response:
            assert response.headers["x-astra-pool-member"] == "west"
            assert response.headers["x-astra-attempts"] == "2"
            text = "".join(
                [c.choices[0].delta.content or "" async for c in await response.parse() if c.choices]
            )
        assert text == "from west"
        assert (_selections(sidecar, "east"), _selections(sidecar, "west")) == (1, 1)
