"""Two sidecar processes share each cluster's breaker through one real Redis
(`circuitBreaker.shared: true`, sidecar/fleet/breaker_store.py). The failing upstream is a fake
OpenAI server in this process (tests/fakes/openai_upstream.py) that counts what reaches it."""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import redis

from tests.fakes.openai_upstream import FakeOpenAI, error
from tests.fleet.fleet_processes import SidecarProcess, ask, fleet
from tests.fleet.redis_server import RedisServer
from tests.processes import eventually

PRIMARY_MODEL = "gpt-shared"


def fleet_yaml(upstream: FakeOpenAI, threshold: int) -> str:
    return f"""
        version: 1
        settings:
          state: {{redis: {{urlEnv: ASTRA_REDIS_URL, keyPrefix: test, timeoutMs: 200}}}}
          retry: {{maxRetries: 0}}
          circuitBreaker: {{failureThreshold: {threshold}, windowMs: 60000, cooldownMs: 60000, shared: true}}
        agents:
          chat:
            model:
              provider: openai
              modelId: {PRIMARY_MODEL}
              endpoint: "{upstream.url}/v1"
              fallback: {{provider: mock, modelId: m, mock: {{reply: "from fallback"}}}}
        """


@pytest.fixture
async def upstream() -> AsyncIterator[FakeOpenAI]:
    fake = await FakeOpenAI(error(500, "primary broken")).start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
def pods(
    tmp_path: Path,
    redis_server: RedisServer,
    upstream: FakeOpenAI,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[list[SidecarProcess]]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    members = fleet(tmp_path, fleet_yaml(upstream, request.param), redis_server.url, 2)
    try:
        yield members
    finally:
        for member in members:
            if member.process is not None:
                member.stop()


def _open_key(upstream: FakeOpenAI) -> str:
    return f"test:breaker:{{openai:{PRIMARY_MODEL}:{upstream.url}/v1}}:open"


def _shared_open_ms(redis_server: RedisServer, upstream: FakeOpenAI) -> int:
    return int(redis.Redis(port=redis_server.port, socket_timeout=1).pttl(_open_key(upstream)))


def _metric(base: str, name: str) -> str:
    with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
        text = response.read().decode()
    return next((line for line in text.splitlines() if line.startswith(name)), "")


async def _served_by(session: aiohttp.ClientSession, pod: SidecarProcess, times: int) -> list[str]:
    providers = []
    for _ in range(times):
        answer = await ask(session, pod.base, "chat")
        assert answer.status == 200, answer.body
        assert answer.body["choices"][0]["message"]["content"] == "from fallback"
        providers.append(answer.headers["x-astra-provider"])
    return providers


@pytest.mark.parametrize("pods", [2], indirect=True)
async def test_failures_on_one_pod_open_the_breaker_on_the_other(
    pods: list[SidecarProcess], upstream: FakeOpenAI, redis_server: RedisServer
) -> None:
    pod_a, pod_b = pods
    async with aiohttp.ClientSession() as session:
        assert await _served_by(session, pod_a, 2) == ["mock", "mock"]
        assert len(upstream.received) == 2  # A's two failures opened its breaker
        assert await eventually(lambda: _shared_open_ms(redis_server, upstream) > 0)
        assert await _served_by(session, pod_b, 3) == ["mock"] * 3
        assert await _served_by(session, pod_a, 1) == ["mock"]
    assert len(upstream.received) == 2, "B never sent a request to the failing upstream"
    assert _metric(pod_b.base, 'astra_breaker_state{cluster="openai').endswith(" 2.0")


@pytest.mark.parametrize("pods", [2], indirect=True)
async def test_one_failure_on_each_pod_adds_up_to_the_threshold(
    pods: list[SidecarProcess], upstream: FakeOpenAI, redis_server: RedisServer
) -> None:
    pod_a, pod_b = pods
    async with aiohttp.ClientSession() as session:
        await _served_by(session, pod_a, 1)
        await eventually(
            lambda: bool(redis.Redis(port=redis_server.port).zcard(_open_key(upstream)[:-4] + "failures"))
        )
        await _served_by(session, pod_b, 1)  # the fleet's second failure: open for both
        assert await eventually(lambda: _shared_open_ms(redis_server, upstream) > 0)
        await _served_by(session, pod_a, 2)
        await _served_by(session, pod_b, 2)
    assert len(upstream.received) == 2


@pytest.mark.parametrize("pods", [3], indirect=True)
async def test_without_redis_each_pod_falls_back_on_its_own_breaker(
    pods: list[SidecarProcess], upstream: FakeOpenAI, redis_server: RedisServer
) -> None:
    pod_a, pod_b = pods
    redis_server.stop()
    async with aiohttp.ClientSession() as session:
        await _served_by(session, pod_a, 5)  # 3 failures open A's own breaker: 2 answers skip it
        await _served_by(session, pod_b, 1)  # B's breaker knows nothing of A's
    assert len(upstream.received) == 4
    assert _metric(pod_a.base, "astra_breaker_state_available").endswith(" 0.0")
    errors = _metric(pod_a.base, "astra_breaker_state_errors_total")
    assert errors and float(errors.rsplit(" ", 1)[1]) >= 1
    logs = pod_a.stop()
    assert logs.count("shared breaker state unreachable") == 1, "logged once per transition"
    assert "Traceback" not in logs
