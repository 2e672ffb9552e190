"""maxInFlight: past the sidecar's cap, or an agent's share of it, a request is a 503
`over_capacity` with Retry-After in its route's shape and counted by reason, while `/healthz`
and the other agents are still answered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from astra_sidecar.sidecar.serving.admission import ADMISSION
from tests.processes import eventually
from tests.sidecar.harness import compile_yaml
from tests.sidecar.hostile.served import Served, served

YML = """
version: 1
settings: {limits: {maxInFlight: 2}}
agents:
  slow-a: {model: {provider: mock, modelId: a, mock: {latencyMs: 3000}}}
  slow-b: {model: {provider: mock, modelId: b, mock: {latencyMs: 3000}}}
  fast: {model: {provider: mock, modelId: c}}
"""


@pytest.fixture
async def sidecar(tmp_path: Path) -> AsyncIterator[Served]:
    async with served(compile_yaml(tmp_path, YML)) as running:
        yield running


async def _ask(
    http: aiohttp.ClientSession, sidecar: Served, agent: str
) -> tuple[int, dict[str, str], dict[str, object]]:
    body = {"model": agent, "messages": [{"role": "user", "content": "hi"}]}
    async with http.post(sidecar.url + "/v1/chat/completions", json=body) as r:
        return r.status, dict(r.headers), json.loads(await r.read())


async def test_requests_past_the_cap_or_an_agents_share_are_503_over_capacity(sidecar: Served) -> None:
    async with aiohttp.ClientSession() as http:
        held = asyncio.ensure_future(_ask(http, sidecar, "slow-a"))
        assert await eventually(lambda: sidecar.app[ADMISSION].per_agent["slow-a"] == 1)
        # Three agents: each may hold half of maxInFlight (1); slow-a has its share.
        status, headers, body = await _ask(http, sidecar, "slow-a")
        assert (status, headers["Retry-After"]) == (503, "1")
        assert body["error"]["code"] == "over_capacity" and "this agent's share" in body["error"]["message"]  # type: ignore[index]
        held_b = asyncio.ensure_future(_ask(http, sidecar, "slow-b"))
        assert await eventually(lambda: sidecar.app[ADMISSION].per_agent["slow-b"] == 1)
        # Two in flight: a third request is over the sidecar's cap, whatever its agent.
        status, headers, body = await _ask(http, sidecar, "fast")
        assert (status, headers["Retry-After"], body["error"]["code"]) == (503, "1", "over_capacity")  # type: ignore[index]
        async with http.get(sidecar.url + "/healthz") as r:
            assert r.status == 200
        assert (await held)[0] == 200 and (await held_b)[0] == 200
        assert (await _ask(http, sidecar, "fast"))[0] == 200
    assert sidecar.metric("astra_admission_refused_total", {"reason": "agent"}) == 1
    assert sidecar.metric("astra_admission_refused_total", {"reason": "sidecar"}) == 1
    codes = [r.get("error_code") for r in sidecar.access.records()]
    assert sorted(codes, key=str) == sorted([None, None, None, "over_capacity", "over_capacity"], key=str)
