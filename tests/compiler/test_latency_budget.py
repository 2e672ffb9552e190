"""Worst-case latency arithmetic behind AST214 and `astra explain`."""

from __future__ import annotations

from compiler.table import RetryPolicy, Timeouts
from compiler.table.retry import attempt_budget, backoff_ms, unreachable_from


def test_backoff_doubles_caps_and_adds_jitter() -> None:
    retry = RetryPolicy(max_retries=6, base_delay_ms=250, max_delay_ms=1000, jitter=0.2)
    assert [backoff_ms(retry, n) for n in range(1, 7)] == [300, 600, 1200, 1200, 1200, 1200]


def test_attempt_budget_with_defaults() -> None:
    # maxRetries 2 -> 3 tries of attemptMs 30000 = 90000 ms; backoff (base 250, cap 8000, jitter 0.2):
    # ceil(min(8000, 250 * 2^0) * 1.2) + ceil(min(8000, 250 * 2^1) * 1.2) = 300 + 600 = 900 ms;
    # total 90000 + 900 = 90900 ms, so with requestTimeoutMs 120000 fallback 1 (at 90900) is in reach
    # and fallback 2 (at 2 * 90900 = 181800) is not.
    budget = attempt_budget(RetryPolicy(), Timeouts())
    assert (budget.tries, budget.attempt_ms, budget.backoff_ms, budget.total_ms) == (3, 30000, 900, 90900)
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
