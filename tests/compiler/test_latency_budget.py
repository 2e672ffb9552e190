"""Backoff delays and the worst-case latency behind AST214 and `astra explain`, from one definition."""

from __future__ import annotations

import random

import pytest

from astra_sidecar.compiler.table import RetryPolicy, Timeouts
from astra_sidecar.compiler.table.retry import (
    attempt_budget,
    backoff_s,
    delay_ms,
    unreachable_from,
    worst_delays_ms,
)


def test_delays_double_and_cap() -> None:
    retry = RetryPolicy(max_retries=6, base_delay_ms=250, max_delay_ms=1000, jitter=0.2)
    assert [delay_ms(retry, n) for n in range(1, 7)] == [250, 500, 1000, 1000, 1000, 1000]
    assert worst_delays_ms(retry) == (250, 500, 1000, 1000, 1000, 1000)


@pytest.mark.parametrize("jitter", [0.0, 0.2, 0.5, 1.0])
def test_the_worst_case_bounds_every_backoff_the_sidecar_can_wait(jitter: float) -> None:
    policy = RetryPolicy(max_retries=8, base_delay_ms=30, max_delay_ms=2000, jitter=jitter)
    rng = random.Random(20250301)
    for retry in range(policy.max_retries):
        worst_s = delay_ms(policy, retry + 1) / 1000.0
        draws = [backoff_s(policy, retry, rng) for _ in range(2000)]
        assert all(worst_s * (1 - jitter) <= wait <= worst_s for wait in draws), retry
        if jitter == 0:
            assert set(draws) == {worst_s}, "without jitter every wait is the worst case"
        else:
            assert min(draws) < worst_s * (1 - jitter / 2) < max(draws), "jitter spreads the waits down"
    budget_s = attempt_budget(policy, Timeouts(attempt_ms=0)).total_ms / 1000.0
    assert sum(backoff_s(policy, retry, rng) for retry in range(policy.max_retries)) <= budget_s


def test_attempt_budget_with_defaults() -> None:
    # maxRetries 2 -> 3 tries of attemptMs 30000 = 90000 ms; backoff (base 250, cap 8000, jitter
    # only shortens): min(8000, 250 * 2^0) + min(8000, 250 * 2^1) = 250 + 500 = 750 ms; total
    # 90750 ms, so with requestTimeoutMs 120000 fallback 1 (at 90750) is in reach and fallback 2
    # (at 2 * 90750 = 181500) is not.
    budget = attempt_budget(RetryPolicy(), Timeouts())
    assert (budget.tries, budget.attempt_ms, budget.backoff_ms, budget.total_ms) == (3, 30000, 750, 90750)
    assert unreachable_from(2, budget, 120000) is None
    assert unreachable_from(3, budget, 120000) == 2


def test_no_retries_means_no_backoff() -> None:
    budget = attempt_budget(RetryPolicy(max_retries=0), Timeouts(attempt_ms=5))
    assert budget.total_ms == 5


def test_first_unreachable_fallback() -> None:
    budget = attempt_budget(RetryPolicy(max_retries=0), Timeouts(attempt_ms=10))
    assert unreachable_from(4, budget, 25) == 3
    assert unreachable_from(4, budget, 20) == 2, "starting exactly at the deadline is too late"
    assert unreachable_from(3, budget, 21) is None
    assert unreachable_from(1, budget, 1) is None, "a plan without fallbacks has nothing to miss"
