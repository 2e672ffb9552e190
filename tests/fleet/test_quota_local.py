"""In-process quotas: GCRA arithmetic on an injected clock, and refusals in each caller's format."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from astra_sidecar.compiler.table.fleet import Budget, QuotaLimits, Rate
from astra_sidecar.sidecar.clock import ManualClock
from astra_sidecar.sidecar.fleet import gcra
from astra_sidecar.sidecar.fleet.headers import duration
from astra_sidecar.sidecar.fleet.local import LocalCounters
from astra_sidecar.sidecar.fleet.model import Charge
from tests.sidecar.harness import compile_yaml, running_sidecar


def _charge(limits: QuotaLimits, input_tokens: int = 0, lease: str | None = None) -> Charge:
    return Charge("a:-", limits, input_tokens, 0, lease, 60000, "2026-12-03", 3_600_000)


def test_gcra_allows_the_whole_limit_then_one_per_interval() -> None:
    tat, allowed = None, 0
    for _ in range(5):
        step = gcra.step(tat, 0.0, limit=4, window_ms=60000, cost=1)
        if step.allowed:
            tat, allowed = step.tat_ms, allowed + 1
    assert allowed == 4
    refused = gcra.step(tat, 0.0, 4, 60000, 1)
    assert (refused.allowed, refused.wait_ms, refused.remaining) == (False, 15000.0, 0)
    assert gcra.step(tat, 15000.0, 4, 60000, 1).allowed


async def test_local_counters_refuse_after_n_and_replenish_on_the_clock() -> None:
    clock = ManualClock()
    counters = LocalCounters(clock)
    limits = QuotaLimits(requests=Rate(3, 3000))
    verdicts = [await counters.admit(_charge(limits)) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert verdicts[3].refused_by == "requests" and verdicts[3].retry_after_ms == 1000
    clock.advance(1.0)
    assert (await counters.admit(_charge(limits))).allowed


async def test_settlement_replaces_the_estimate_by_real_usage() -> None:
    counters = LocalCounters(ManualClock())
    limits = QuotaLimits(budget=Budget(100, "day"))
    first = _charge(limits, input_tokens=60)
    assert (await counters.admit(first)).allowed
    assert not (await counters.admit(_charge(limits, input_tokens=60))).allowed  # 60 + 60 > 100
    await counters.settle(first, input_delta=-50, output_delta=0)  # it really used 10
    verdict = await counters.admit(_charge(limits, input_tokens=60))
    assert verdict.allowed and verdict.windows["budget"].remaining == 30


async def test_concurrent_streams_hold_a_lease_until_settled() -> None:
    counters = LocalCounters(ManualClock())
    limits = QuotaLimits(concurrent_streams=1)
    held = _charge(limits, lease="one")
    assert (await counters.admit(held)).allowed
    assert (await counters.admit(_charge(limits, lease="two"))).refused_by == "concurrent_streams"
    await counters.settle(held, 0, 0)
    assert (await counters.admit(_charge(limits, lease="two"))).allowed


def test_reset_durations_read_as_openai_writes_them() -> None:
    assert [duration(20), duration(1500), duration(360000), duration(7_200_000)] == [
        "20ms",
        "1.5s",
        "6m0s",
        "2h0m0s",
    ]


AGENTS = """
    version: 1
    agents:
      support:
        model: {provider: mock, modelId: m, mock: {reply: "hello there"}}
        quotas:
          requests: {limit: 2, windowMs: 60000}
          keyBy: {header: x-tenant}
          perKey:
            big: {requests: {limit: 3, windowMs: 60000}}
      capped:
        model: {provider: mock, modelId: m, mock: {reply: "hello there"}}
        quotas:
          budget: {tokens: 12, period: month}
    """


async def test_refusals_come_in_the_callers_format_per_key(tmp_path: Path) -> None:
    table = compile_yaml(tmp_path, AGENTS)
    body = {"model": "support", "messages": [{"role": "user", "content": "hi"}]}
    async with running_sidecar(table) as sidecar, aiohttp.ClientSession() as session:
        chat = sidecar.url + "/v1/chat/completions"

        async def status(tenant: str) -> int:
            async with session.post(chat, json=body, headers={"x-tenant": tenant}) as response:
                return response.status

        assert [await status("small") for _ in range(3)] == [200, 200, 429]
        assert [await status("big") for _ in range(4)] == [200, 200, 200, 429]
        anthropic = sidecar.url + "/v1/anthropic/support/v1/messages"
        claude_body = {"model": "support", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        async with session.post(anthropic, json=claude_body, headers={"x-tenant": "small"}) as response:
            refused = await response.json()
            assert response.status == 429 and response.headers["Retry-After"] == "30"
            assert response.headers["x-ratelimit-remaining-requests"] == "0"
        assert refused["type"] == "error" and refused["error"]["type"] == "rate_limit_error"
        assert sidecar.metric("astra_quota_checks_total", {"agent": "support", "result": "refused"}) == 3
        assert (
            sidecar.metric("astra_requests_total", {"agent": "support", "provider": "mock", "status": "200"})
            == 5
        )


async def test_a_spent_budget_is_its_own_error_and_never_reaches_the_provider(tmp_path: Path) -> None:
    table = compile_yaml(tmp_path, AGENTS)
    body = {"model": "capped", "messages": [{"role": "user", "content": "hi"}]}
    async with running_sidecar(table) as sidecar, aiohttp.ClientSession() as session:
        chat = sidecar.url + "/v1/chat/completions"
        async with session.post(chat, json=body) as response:
            assert response.status == 200
            usage = (await response.json())["usage"]
        await sidecar.state.shared.quotas.drain()
        async with session.post(chat, json=body) as response:
            error = (await response.json())["error"]
            assert response.status == 429
            assert response.headers["x-ratelimit-remaining-budget-tokens"] == str(12 - usage["total_tokens"])
    assert error["code"] == "budget_exhausted"
    assert (
        sidecar.metric(
            "astra_upstream_attempts_total", {"agent": "capped", "provider": "mock", "outcome": "ok"}
        )
        == 1
    )
