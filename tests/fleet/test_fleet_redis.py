"""Three sidecar processes share one real Redis: a fleet-wide limit, a budget across a restart,
and Redis killed mid-run under each `onStateUnavailable` policy."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.fleet.fleet_processes import Answer, SidecarProcess, ask, fleet
from tests.fleet.redis_server import RedisServer

FLEET = """
    version: 1
    settings:
      state: {redis: {urlEnv: ASTRA_REDIS_URL, keyPrefix: test, timeoutMs: 200}}
    agents:
      limited:
        model: {provider: mock, modelId: m, mock: {reply: "ok"}}
        quotas:
          requests: {limit: 12, windowMs: 3600000}
          onStateUnavailable: deny
      budgeted:
        model: {provider: mock, modelId: m, mock: {reply: "ok"}}
        quotas:
          budget: {tokens: 25, period: day}
          onStateUnavailable: deny
      lenient:
        model: {provider: mock, modelId: m, mock: {reply: "ok"}}
        quotas:
          requests: {limit: 100000, windowMs: 60000}
          onStateUnavailable: allow
    """


@pytest.fixture
def sidecars(tmp_path: Path, redis_server: RedisServer) -> Iterator[list[SidecarProcess]]:
    members = fleet(tmp_path, FLEET, redis_server.url, 3)
    try:
        yield members
    finally:
        for member in members:
            if member.process is not None:
                member.stop()


async def test_a_fleet_wide_limit_of_n_allows_exactly_n(sidecars: list[SidecarProcess]) -> None:
    async with aiohttp.ClientSession() as session:
        first = [await ask(session, sidecars[0].base, "limited") for _ in range(5)]
        rest = await asyncio.gather(*(ask(session, sidecars[1 + i % 2].base, "limited") for i in range(30)))
    assert [a.status for a in first] == [200] * 5
    # Replicas 1 and 2 alone would allow 12 each: together with replica 0 the fleet allows 12.
    assert Counter(a.status for a in rest) == {200: 7, 429: 23}
    refused = next(a for a in rest if a.status == 429)
    assert refused.body["error"]["code"] == "rate_limit_exceeded"
    assert refused.body["error"]["type"] == "rate_limit_error"
    assert refused.headers["x-ratelimit-limit-requests"] == "12"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert int(refused.headers["Retry-After"]) > 0
    assert first[0].headers["x-ratelimit-remaining-requests"] == "11"


async def _spend(session: aiohttp.ClientSession, base: str) -> list[Answer]:
    answers: list[Answer] = []
    for _ in range(10):
        answers.append(await ask(session, base, "budgeted"))
        if answers[-1].status != 200:
            break
        await asyncio.sleep(0.05)  # lets the settlement of real usage land before the next check
    return answers


async def test_a_budget_survives_a_sidecar_restart(sidecars: list[SidecarProcess]) -> None:
    first = sidecars[0]
    async with aiohttp.ClientSession() as session:
        spent = await _spend(session, first.base)
        assert [a.status for a in spent[:-1]] == [200] * (len(spent) - 1)
        assert spent[-1].status == 429 and spent[-1].body["error"]["code"] == "budget_exhausted"
        assert len(spent) >= 2
    first.stop()
    first.start()
    async with (
        aiohttp.ClientSession() as session
    ):  # a new session: the old one's sockets went with the process
        again = await ask(session, first.base, "budgeted")
        other = await ask(session, sidecars[1].base, "budgeted")
    assert (again.status, again.body["error"]["code"]) == (429, "budget_exhausted")
    assert (other.status, other.body["error"]["code"]) == (429, "budget_exhausted")
    assert (
        again.headers["x-ratelimit-remaining-budget-tokens"]
        == spent[-1].headers["x-ratelimit-remaining-budget-tokens"]
    )


def _well_formed(answer: Answer, agent: str) -> bool:
    if answer.status == 200:
        return answer.body["choices"][0]["message"]["content"] == "ok"
    return (
        agent == "limited"
        and answer.status == 503
        and answer.body["error"]["code"] == ("quota_state_unavailable")
    )


async def test_redis_killed_mid_run_follows_the_policy_and_recovers(
    sidecars: list[SidecarProcess], redis_server: RedisServer
) -> None:
    answers: list[tuple[str, str, Answer]] = []

    async def round_trip(session: aiohttp.ClientSession) -> None:
        for index, member in enumerate(sidecars):
            agent = "lenient" if index % 2 else "limited"
            answers.append((agent, "", await ask(session, member.base, agent)))

    async with aiohttp.ClientSession() as session:
        await round_trip(session)
        redis_server.stop()
        down = len(answers)
        for _ in range(3):
            await round_trip(session)
        during = answers[down:]
        redis_server.start()  # same port, empty: counters start again
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            recovered = await ask(session, sidecars[0].base, "limited")
            answers.append(("limited", "", recovered))
            if recovered.status == 200:
                break
            await asyncio.sleep(0.05)
    assert all(_well_formed(answer, agent) for agent, _, answer in answers), "a lost or malformed answer"
    assert {a.status for agent, _, a in during if agent == "lenient"} == {200}
    assert {a.status for agent, _, a in during if agent == "limited"} == {503}
    assert answers[-1][2].status == 200, "did not recover when Redis came back"
    logs = "".join(member.stop() for member in sidecars)
    assert logs.count("quota state unreachable") == len(sidecars), "logged once per transition, per replica"
    assert logs.count("quota state reachable again") >= 1
