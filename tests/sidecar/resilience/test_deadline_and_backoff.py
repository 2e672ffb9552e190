"""The deadline against backoff and Retry-After, through the app (sidecar/resilience/plan.py):

- a backoff that would outlive the request deadline (`requestTimeoutMs`) is not taken: the plan
  moves on to the fallback, or the last upstream error is the answer when there is none;
- a Retry-After beyond `maxRetryAfterMs` skips to the fallback instead of waiting.

The clock is a ManualClock: nothing but the sidecar's own sleeps moves it, so the time left when
each sleep was asked for is exactly the deadline minus the sleeps before it. Every amount below
is a whole number of seconds or a binary fraction, so the edges compare exactly.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from astra_sidecar.sidecar.clock import ManualClock
from tests.fakes.openai_upstream import Step, completion, error
from tests.sidecar.harness import compile_yaml, running_sidecar
from tests.sidecar.resilience.two_providers import ENV, Upstreams, chat, two_provider_yaml, two_upstreams

SEED = 7


class DeadlineClock(ManualClock):
    """A ManualClock that also notes when each sleep was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.start = self.now()
        self.asked_at: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.asked_at.append(self.now())
        await super().sleep(seconds)

    def time_left_at_each_sleep(self, deadline_ms: int) -> list[float]:
        return [self.start + deadline_ms / 1000.0 - at for at in self.asked_at]

    def assert_no_sleep_outlived(self, deadline_ms: int) -> None:
        left = self.time_left_at_each_sleep(deadline_ms)
        assert all(s < t for s, t in zip(self.sleeps, left, strict=True)), (self.sleeps, left)


@pytest.fixture
async def upstreams() -> AsyncIterator[Upstreams]:
    async with two_upstreams() as pair:
        yield pair


def yaml(upstreams: Upstreams, deadline_ms: int, *, fallback: bool = True, **retry: float) -> str:
    primary, other = upstreams
    return two_provider_yaml(
        primary.url,
        other.url if fallback else None,
        retries=int(retry.pop("maxRetries", 3)),
        retry=retry,
        extra=f"requestTimeoutMs: {deadline_ms}",
    )


# --- backoff against the deadline ------------------------------------------------------------------


async def test_a_backoff_longer_than_the_time_left_is_not_taken_and_the_fallback_serves(
    tmp_path: Path, upstreams: Upstreams
) -> None:
    primary, fallback = upstreams
    primary.script = [error(503, "primary down")]
    table = compile_yaml(tmp_path, yaml(upstreams, 5000, baseDelayMs=2000, maxDelayMs=8000))
    clock = DeadlineClock()
    async with running_sidecar(table, env=ENV, clock=clock) as sidecar:
        raw = await chat(sidecar)
    # 2 s of backoff leave 3 s: the next backoff (4 s) would outlive the deadline.
    assert clock.sleeps == [2.0]
    clock.assert_no_sleep_outlived(5000)
    assert (len(primary.received), len(fallback.received)) == (2, 1)
    assert (raw.headers["x-astra-provider"], raw.headers["x-astra-attempts"]) == ("groq", "3")
    assert raw.parse().choices[0].message.content == "from fallback"


async def test_a_backoff_equal_to_the_time_left_is_not_taken(tmp_path: Path, upstreams: Upstreams) -> None:
    primary, fallback = upstreams
    primary.script = [error(503)]
    table = compile_yaml(tmp_path, yaml(upstreams, 6000, baseDelayMs=2000, maxDelayMs=8000))
    clock = DeadlineClock()
    async with running_sidecar(table, env=ENV, clock=clock) as sidecar:
        raw = await chat(sidecar)
    # After 2 s of backoff exactly 4 s are left, and the next backoff is exactly 4 s: waiting it
    # would leave no time at all for the attempt after it.
    assert clock.sleeps == [2.0]
    assert clock.start + 6.0 - clock.now() == 4.0
    assert (len(primary.received), len(fallback.received)) == (2, 1)
    assert (raw.headers["x-astra-provider"], raw.headers["x-astra-attempts"]) == ("groq", "3")


async def test_a_backoff_just_shorter_than_the_time_left_is_taken(
    tmp_path: Path, upstreams: Upstreams
) -> None:
    primary, fallback = upstreams
    primary.script = [error(503), error(503), Step("hang")]
    # 6.001 s: after backoffs of 2 s and 4 s, 1 ms is left for the third attempt (which hangs).
    table = compile_yaml(tmp_path, yaml(upstreams, 6001, baseDelayMs=2000, maxDelayMs=8000))
    clock = DeadlineClock()
    async with running_sidecar(table, env=ENV, clock=clock) as sidecar:
        with pytest.raises(openai.APIStatusError) as caught:
            await chat(sidecar)
    assert clock.sleeps == [2.0, 4.0]
    clock.assert_no_sleep_outlived(6001)
    # The third attempt had 1 ms (of real time): it may have been cut before the fake saw it.
    assert len(primary.received) in (2, 3)
    assert fallback.received == [], "the deadline ran out on the primary"
    assert caught.value.status_code == 504
    assert caught.value.body["code"] == "deadline_exceeded"  # type: ignore[index]
    assert caught.value.response.headers["x-astra-attempts"] == "3"


async def test_jittered_backoffs_come_from_the_seeded_rng_and_stop_before_the_deadline(
    tmp_path: Path, upstreams: Upstreams
) -> None:
    primary, fallback = upstreams
    primary.script = [error(503)]
    config = yaml(upstreams, 5000, maxRetries=6, baseDelayMs=1000, maxDelayMs=8000, jitter=0.5)
    table = compile_yaml(tmp_path, config)
    clock = DeadlineClock()
    async with running_sidecar(table, env=ENV, clock=clock, seed=SEED) as sidecar:
        raw = await chat(sidecar)
    rng = random.Random(SEED)  # the app's rng: only backoff draws from it
    expected = [2**n * (1.0 - 0.5 * rng.random()) for n in range(2)]
    # 1 s and 2 s, jittered down: at most 3 s spent, so 2 s or more are left; the third backoff
    # (4 s, jittered to at least 2 s) would not fit in what the seed leaves.
    assert clock.sleeps == expected
    third = 4.0 * (1.0 - 0.5 * rng.random())
    assert third >= clock.time_left_at_each_sleep(5000)[-1] - clock.sleeps[-1]
    clock.assert_no_sleep_outlived(5000)
    assert (len(primary.received), len(fallback.received)) == (3, 1)
    assert raw.headers["x-astra-provider"] == "groq"


# --- Retry-After -----------------------------------------------------------------------------------


async def test_a_retry_after_beyond_max_retry_after_skips_to_the_fallback_without_waiting(
    tmp_path: Path, upstreams: Upstreams
) -> None:
    primary, fallback = upstreams
    primary.script = [error(429, "slow down", retry_after_ms="2001"), Step(body=completion("waited"))]
    table = compile_yaml(tmp_path, yaml(upstreams, 60_000, maxRetryAfterMs=2000))
    clock = DeadlineClock()
    async with running_sidecar(table, env=ENV, clock=clock) as sidecar:
        raw = await chat(sidecar)
    assert clock.sleeps == []
    assert (len(primary.received), len(fallback.received)) == (1, 1)
    assert (raw.headers["x-astra-provider"], raw.headers["x-astra-attempts"]) == ("groq", "2")


async def test_a_retry_after_of_exactly_max_retry_after_is_waited(
    tmp_path: Path, upstreams: Upstreams
) -> None:
    primary, fallback = upstreams
    primary.script = [error(429, "slow down", retry_after_ms="2000"), Step(body=completion("waited"))]
    table = compile_yaml(tmp_path, yaml(upstreams, 60_000, maxRetryAfterMs=2000))
    clock = DeadlineClock()
    async with running_sidecar(table, env=ENV, clock=clock) as sidecar:
        raw = await chat(sidecar)
    assert clock.sleeps == [2.0], "the provider's hint, not the 100 ms backoff"
    assert (len(primary.received), len(fallback.received)) == (2, 0)
    assert (raw.headers["x-astra-provider"], raw.headers["x-astra-attempts"]) == ("openai", "2")
    assert raw.parse().choices[0].message.content == "waited"


async def test_a_retry_after_longer_than_the_time_left_is_not_waited(
    tmp_path: Path, upstreams: Upstreams
) -> None:
    primary, fallback = upstreams
    primary.script = [error(429, "slow down", retry_after="4"), Step(body=completion("waited"))]
    # Within maxRetryAfterMs (30 s), but 4 s is more than the 3 s deadline has left.
    table = compile_yaml(tmp_path, yaml(upstreams, 3000, maxRetryAfterMs=30_000))
    clock = DeadlineClock()
    async with running_sidecar(table, env=ENV, clock=clock) as sidecar:
        raw = await chat(sidecar)
    assert clock.sleeps == []
    assert (len(primary.received), len(fallback.received)) == (1, 1)
    assert (raw.headers["x-astra-provider"], raw.headers["x-astra-attempts"]) == ("groq", "2")


# --- without a fallback ----------------------------------------------------------------------------


async def test_without_a_fallback_the_last_upstream_error_is_the_answer_once_backoff_would_outlive_it(
    tmp_path: Path, upstreams: Upstreams
) -> None:
    primary, _ = upstreams
    primary.script = [error(503, "first"), error(503, "primary down")]
    table = compile_yaml(
        tmp_path, yaml(upstreams, 5000, fallback=False, baseDelayMs=2000, maxDelayMs=8000)
    )
    clock = DeadlineClock()
    async with running_sidecar(table, env=ENV, clock=clock) as sidecar:
        with pytest.raises(openai.APIStatusError) as caught:
            await chat(sidecar)
    assert clock.sleeps == [2.0]
    clock.assert_no_sleep_outlived(5000)
    assert len(primary.received) == 2
    assert caught.value.status_code == 503
    assert caught.value.body["message"] == "primary down"  # type: ignore[index]
    assert caught.value.response.headers["x-astra-attempts"] == "2"
    assert "x-astra-provider" not in caught.value.response.headers, "no provider served"


async def test_without_a_fallback_a_retry_after_beyond_the_cap_is_answered_at_once(
    tmp_path: Path, upstreams: Upstreams
) -> None:
    primary, _ = upstreams
    primary.script = [error(429, "slow down", retry_after="31"), Step(body=completion("waited"))]
    table = compile_yaml(tmp_path, yaml(upstreams, 120_000, fallback=False, maxRetryAfterMs=30_000))
    clock = DeadlineClock()
    async with running_sidecar(table, env=ENV, clock=clock) as sidecar:
        with pytest.raises(openai.RateLimitError) as caught:
            await chat(sidecar)
    assert clock.sleeps == []
    assert len(primary.received) == 1
    assert caught.value.status_code == 429
    assert caught.value.body["message"] == "slow down"  # type: ignore[index]
    assert caught.value.response.headers["x-astra-attempts"] == "1"
