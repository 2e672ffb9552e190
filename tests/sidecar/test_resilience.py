"""Retry, circuit breaker, fallback and deadline: exactly as users rely on them (issue 3)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from astra_sidecar.sidecar.clock import ManualClock, MonotonicClock
from tests.fakes.openai_upstream import FakeOpenAI, Step, completion, error, text_chunks
from tests.processes import eventually
from tests.sidecar.harness import compile_yaml, running_sidecar
from tests.sidecar.resilience.two_providers import ENV, Upstreams, chat, two_provider_yaml, two_upstreams


@pytest.fixture
async def upstreams() -> AsyncIterator[Upstreams]:
    async with two_upstreams() as pair:
        yield pair


async def test_retries_429_honouring_retry_after_then_succeeds(tmp_path: Path, upstreams: Upstreams) -> None:
    primary, fallback = upstreams
    primary.script = [error(429, "slow down", retry_after="2"), Step(body=completion("second try"))]
    table = compile_yaml(tmp_path, two_provider_yaml(primary.url, fallback.url))
    clock = ManualClock()
    async with running_sidecar(table, env=ENV, clock=clock) as sidecar:
        raw = await chat(sidecar)
    assert raw.parse().choices[0].message.content == "second try"
    assert raw.headers["x-astra-attempts"] == "2"
    assert raw.headers["x-astra-provider"] == "openai"
    assert clock.sleeps == [2.0]
    assert len(primary.received) == 2 and len(fallback.received) == 0


async def test_backoff_is_exponential_and_retries_stop_at_max(tmp_path: Path, upstreams: Upstreams) -> None:
    primary, fallback = upstreams
    primary.script = [error(503)]
    table = compile_yaml(tmp_path, two_provider_yaml(primary.url, fallback.url, retries=2))
    clock = ManualClock()
    async with running_sidecar(table, env=ENV, clock=clock) as sidecar:
        raw = await chat(sidecar)
        retries = sidecar.metric("astra_retries_total", {"agent": "chat", "provider": "openai"})
        fallbacks = sidecar.metric("astra_fallbacks_total", {"agent": "chat", "provider": "groq"})
    assert raw.parse().choices[0].message.content == "from fallback"
    assert raw.headers["x-astra-provider"] == "groq"
    assert raw.headers["x-astra-attempts"] == "4"
    assert len(primary.received) == 3 and len(fallback.received) == 1
    assert clock.sleeps == [0.1, 0.2]
    assert (retries, fallbacks) == (2.0, 1.0)


async def test_client_errors_are_not_retried_nor_fall_back(tmp_path: Path, upstreams: Upstreams) -> None:
    primary, fallback = upstreams
    primary.script = [error(400, "bad 'stop' value", code="invalid_value")]
    table = compile_yaml(tmp_path, two_provider_yaml(primary.url, fallback.url))
    async with running_sidecar(table, env=ENV) as sidecar:
        with pytest.raises(openai.BadRequestError) as caught:
            await chat(sidecar)
    assert caught.value.status_code == 400
    assert caught.value.body["message"] == "bad 'stop' value"  # type: ignore[index]
    assert caught.value.body["code"] == "invalid_value"  # type: ignore[index]
    assert caught.value.response.headers["x-astra-attempts"] == "1"
    assert len(primary.received) == 1 and len(fallback.received) == 0


async def test_auth_failure_at_primary_falls_back_without_retry(tmp_path: Path, upstreams: Upstreams) -> None:
    primary, fallback = upstreams
    primary.script = [error(401, "invalid key")]
    table = compile_yaml(tmp_path, two_provider_yaml(primary.url, fallback.url))
    async with running_sidecar(table, env=ENV) as sidecar:
        raw = await chat(sidecar)
    assert raw.headers["x-astra-provider"] == "groq"
    assert len(primary.received) == 1 and len(fallback.received) == 1


async def test_when_every_attempt_fails_the_last_status_and_error_are_returned(
    tmp_path: Path, upstreams: Upstreams
) -> None:
    primary, fallback = upstreams
    primary.script = [error(503, "primary down")]
    fallback.script = [error(502, "fallback broken")]
    table = compile_yaml(tmp_path, two_provider_yaml(primary.url, fallback.url, retries=1))
    async with running_sidecar(table, env=ENV) as sidecar:
        with pytest.raises(openai.APIStatusError) as caught:
            await chat(sidecar)
    assert caught.value.status_code == 502
    assert caught.value.body["message"] == "fallback broken"  # type: ignore[index]
    assert caught.value.response.headers["x-astra-attempts"] == "4"


async def test_network_errors_are_retried_then_fall_back(tmp_path: Path, upstreams: Upstreams) -> None:
    primary, fallback = upstreams
    primary.script = [Step("reset")]
    table = compile_yaml(tmp_path, two_provider_yaml(primary.url, fallback.url, retries=1))
    async with running_sidecar(table, env=ENV) as sidecar:
        raw = await chat(sidecar)
        network = sidecar.metric(
            "astra_upstream_attempts_total", {"agent": "chat", "provider": "openai", "outcome": "network"}
        )
    assert raw.headers["x-astra-provider"] == "groq"
    assert len(primary.received) == 2
    assert network == 2.0


async def test_connection_refused_counts_as_network_error(tmp_path: Path, upstreams: Upstreams) -> None:
    _, fallback = upstreams
    table = compile_yaml(tmp_path, two_provider_yaml("http://127.0.0.1:9", fallback.url, retries=1))
    async with running_sidecar(table, env=ENV) as sidecar:
        raw = await chat(sidecar)
    assert raw.headers["x-astra-provider"] == "groq"
    assert raw.headers["x-astra-attempts"] == "3"


BREAKER = "circuitBreaker: {failureThreshold: 3, windowMs: 10000, cooldownMs: 30000, successThreshold: 1}"


async def test_breaker_opens_after_threshold_within_window_and_skips_to_fallback(
    tmp_path: Path, upstreams: Upstreams
) -> None:
    primary, fallback = upstreams
    primary.script = [error(500)]
    table = compile_yaml(tmp_path, two_provider_yaml(primary.url, fallback.url, retries=0, breaker=BREAKER))
    clock = ManualClock()
    async with running_sidecar(table, env=ENV, clock=clock) as sidecar:
        for _ in range(3):
            await chat(sidecar)
        assert len(primary.received) == 3
        skipped = await chat(sidecar)
        key = f"openai:gpt-primary:{primary.url}/v1"
        state = sidecar.metric("astra_breaker_state", {"cluster": key, "provider": "openai"})
        opened = sidecar.metric(
            "astra_breaker_transitions_total", {"cluster": key, "provider": "openai", "to": "open"}
        )
    assert len(primary.received) == 3, "an open breaker must not let requests through"
    assert skipped.headers["x-astra-provider"] == "groq"
    assert skipped.headers["x-astra-attempts"] == "1"
    assert (state, opened) == (2.0, 1.0)


async def test_failures_spread_beyond_the_window_do_not_open(tmp_path: Path, upstreams: Upstreams) -> None:
    primary, fallback = upstreams
    primary.script = [error(500)]
    table = compile_yaml(tmp_path, two_provider_yaml(primary.url, fallback.url, retries=0, breaker=BREAKER))
    clock = ManualClock()
    async with running_sidecar(table, env=ENV, clock=clock) as sidecar:
        for _ in range(5):
            await chat(sidecar)
            clock.advance(6.0)  # at most two failures inside any 10 s window
    assert len(primary.received) == 5


async def test_half_open_probe_closes_on_success_and_reopens_on_failure(
    tmp_path: Path, upstreams: Upstreams
) -> None:
    primary, fallback = upstreams
    primary.script = [error(500), error(500), error(500), error(500), Step(body=completion("recovered"))]
    table = compile_yaml(tmp_path, two_provider_yaml(primary.url, fallback.url, retries=0, breaker=BREAKER))
    clock = ManualClock()
    async with running_sidecar(table, env=ENV, clock=clock) as sidecar:
        for _ in range(3):
            await chat(sidecar)
        clock.advance(29.0)
        assert (await chat(sidecar)).headers["x-astra-provider"] == "groq"
        assert len(primary.received) == 3
        clock.advance(1.0)
        probe = await chat(sidecar)  # half-open: this probe fails (4th scripted 500) and re-opens
        assert len(primary.received) == 4 and probe.headers["x-astra-provider"] == "groq"
        assert (await chat(sidecar)).headers["x-astra-provider"] == "groq"
        assert len(primary.received) == 4
        clock.advance(30.0)
        healed = await chat(sidecar)  # the next probe succeeds and closes the breaker
        assert healed.headers["x-astra-provider"] == "openai"
        after = await chat(sidecar)
        key = f"openai:gpt-primary:{primary.url}/v1"
        transitions = {
            to: sidecar.metric(
                "astra_breaker_transitions_total", {"cluster": key, "provider": "openai", "to": to}
            )
            for to in ("open", "half_open", "closed")
        }
    assert after.headers["x-astra-provider"] == "openai"
    assert transitions == {"open": 2.0, "half_open": 2.0, "closed": 1.0}


async def test_half_open_lets_a_single_probe_through(tmp_path: Path, upstreams: Upstreams) -> None:
    primary, fallback = upstreams
    primary.script = [error(500), error(500), error(500), Step("hang")]
    table = compile_yaml(tmp_path, two_provider_yaml(primary.url, fallback.url, retries=0, breaker=BREAKER))
    clock = ManualClock()
    async with running_sidecar(table, env=ENV, clock=clock) as sidecar:
        for _ in range(3):
            await chat(sidecar)
        clock.advance(30.0)
        probe = asyncio.ensure_future(chat(sidecar))
        assert await eventually(lambda: len(primary.received) == 4), "the probe never reached the primary"
        others = await asyncio.gather(*(chat(sidecar) for _ in range(3)))
        assert [o.headers["x-astra-provider"] for o in others] == ["groq"] * 3
        assert len(primary.received) == 4
        probe.cancel()


async def test_all_breakers_open_gives_503(tmp_path: Path) -> None:
    down = await FakeOpenAI(error(500)).start()
    try:
        yaml = two_provider_yaml(
            down.url, down.url.replace("127.0.0.1", "localhost"), retries=0, breaker=BREAKER
        )
        table = compile_yaml(tmp_path, yaml)
        async with running_sidecar(table, env=ENV) as sidecar:
            for _ in range(3):
                with pytest.raises(openai.APIStatusError):
                    await chat(sidecar)
            with pytest.raises(openai.APIStatusError) as caught:
                await chat(sidecar)
        assert caught.value.status_code == 503
        assert caught.value.body["code"] == "circuit_open"  # type: ignore[index]
        assert len(down.received) == 6
    finally:
        await down.close()


async def test_deadline_bounds_the_whole_request(tmp_path: Path, upstreams: Upstreams) -> None:
    primary, fallback = upstreams
    primary.script = [Step("hang")]
    yaml = two_provider_yaml(primary.url, fallback.url, extra="requestTimeoutMs: 300")
    table = compile_yaml(tmp_path, yaml)
    async with running_sidecar(table, env=ENV, clock=MonotonicClock()) as sidecar:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(openai.APIStatusError) as caught:
            await chat(sidecar)
        elapsed = loop.time() - started
    assert caught.value.status_code == 504
    assert caught.value.body["code"] == "deadline_exceeded"  # type: ignore[index]
    assert elapsed < 2.0
    assert len(fallback.received) == 0


async def test_stream_failure_before_first_byte_falls_back(tmp_path: Path, upstreams: Upstreams) -> None:
    primary, fallback = upstreams
    primary.script = [error(503)]
    fallback.script = [Step("sse", chunks=text_chunks(["Hel", "lo"], "llama-fallback"))]
    table = compile_yaml(tmp_path, two_provider_yaml(primary.url, fallback.url, retries=0))
    async with running_sidecar(table, env=ENV) as sidecar:
        client = sidecar.client()
        stream = await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Hello"
    assert len(primary.received) == 1 and len(fallback.received) == 1


async def test_stream_cut_before_first_chunk_is_retried(tmp_path: Path, upstreams: Upstreams) -> None:
    primary, fallback = upstreams
    primary.script = [
        Step("sse", chunks=text_chunks(["a"]), cut_after=0),
        Step("sse", chunks=text_chunks(["ok"])),
    ]
    table = compile_yaml(tmp_path, two_provider_yaml(primary.url, fallback.url, retries=1))
    async with running_sidecar(table, env=ENV) as sidecar:
        stream = await sidecar.client().chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "ok"
    assert len(primary.received) == 2 and len(fallback.received) == 0


async def test_stream_failure_after_first_byte_becomes_an_error_event(
    tmp_path: Path, upstreams: Upstreams
) -> None:
    primary, fallback = upstreams
    primary.script = [Step("sse", chunks=text_chunks(["one", "two", "three"]), cut_after=2)]
    table = compile_yaml(tmp_path, two_provider_yaml(primary.url, fallback.url))
    async with running_sidecar(table, env=ENV) as sidecar:
        stream = await sidecar.client().chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        seen: list[str] = []
        with pytest.raises(openai.APIError) as caught:
            async for chunk in stream:
                seen.append(chunk.choices[0].delta.content or "")
    assert seen == ["", "one"]
    assert caught.value.body["code"] == "upstream_unreachable"  # type: ignore[index]
    assert len(primary.received) == 1, "no retry after the first byte"
    assert len(fallback.received) == 0, "no fallback after the first byte"


async def test_client_disconnect_cancels_the_upstream_stream(tmp_path: Path, upstreams: Upstreams) -> None:
    primary, fallback = upstreams
    words = [f"w{i} " for i in range(200)]
    primary.script = [Step("sse", chunks=text_chunks(words), chunk_delay_s=0.02)]
    table = compile_yaml(tmp_path, two_provider_yaml(primary.url, fallback.url))
    async with running_sidecar(table, env=ENV, clock=MonotonicClock()) as sidecar:
        stream = await sidecar.client().chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        async for _ in stream:
            break
        await stream.close()
        assert await eventually(lambda: primary.disconnects > 0), "the upstream stream was never cancelled"
        assert primary.disconnects == 1
        assert sidecar.state.in_flight == 0


async def test_a_refused_passthrough_key_is_the_callers_error_not_a_fallback(
    tmp_path: Path, upstreams: Upstreams
) -> None:
    primary, fallback = upstreams
    primary.script = [error(401, "invalid api key", code="invalid_api_key")]
    yaml = two_provider_yaml(primary.url, fallback.url).replace(
        "endpoint: " + primary.url, "endpoint: " + primary.url + "\n              credentials: passthrough"
    )
    table = compile_yaml(tmp_path, yaml)
    async with running_sidecar(table, env=ENV) as sidecar:
        with pytest.raises(openai.AuthenticationError) as caught:
            await sidecar.client(api_key="sk-callers-own").chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "hi"}]
            )
    assert caught.value.response.headers["x-astra-attempts"] == "1"
    assert primary.received[0].headers["Authorization"] == "Bearer sk-callers-own"
    assert fallback.received == [], "the sidecar's own key must not serve a call whose key was refused"


async def test_a_stream_that_goes_silent_ends_with_a_timeout_event(tmp_path: Path, upstreams: Upstreams) -> None:
    primary, fallback = upstreams
    primary.script = [Step("sse", chunks=text_chunks(["first", "late"]), chunk_delay_s=1.5)]
    yaml = two_provider_yaml(primary.url, fallback.url, extra="timeouts: {streamIdleMs: 200}")
    table = compile_yaml(tmp_path, yaml)
    async with running_sidecar(table, env=ENV, clock=MonotonicClock()) as sidecar:
        stream = await sidecar.client().chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        seen: list[str] = []
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(openai.APIError) as caught:
            async for chunk in stream:
                seen.append(chunk.choices[0].delta.content or "")
        elapsed = loop.time() - started
    assert seen == [""]
    assert caught.value.body["code"] == "upstream_timeout"  # type: ignore[index]
    assert elapsed < 1.4, "the idle timer, not the upstream's next chunk, ended the stream"


async def test_a_stream_cut_after_the_first_byte_counts_its_attempt_as_the_cut_not_ok(
    tmp_path: Path, upstreams: Upstreams
) -> None:
    """Each stream's attempt is counted once, by how the stream ended: a whole one `ok`, one cut
    after its first byte `network` (it used to be counted `ok` at the first byte)."""
    primary, fallback = upstreams
    primary.script = [
        Step("sse", chunks=text_chunks(["one", "two", "three"]), cut_after=2),
        Step("sse", chunks=text_chunks(["whole"])),
    ]
    table = compile_yaml(tmp_path, two_provider_yaml(primary.url, fallback.url))
    async with running_sidecar(table, env=ENV) as sidecar:

        def attempts(outcome: str) -> float:
            labels = {"agent": "chat", "provider": "openai", "outcome": outcome}
            return sidecar.metric("astra_upstream_attempts_total", labels)

        client = sidecar.client()
        cut = await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with pytest.raises(openai.APIError):
            async for _ in cut:
                pass
        assert (attempts("ok"), attempts("network")) == (0, 1)
        whole = await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert [chunk async for chunk in whole]
        assert (attempts("ok"), attempts("network")) == (1, 1)
