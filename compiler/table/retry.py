"""Worst-case latency of an agent's plan, for the AST214 warning and `astra explain`.

One cluster attempt can take (1 + maxRetries) * attemptMs plus the backoff delays between tries;
delay n (1-based) is min(maxDelayMs, baseDelayMs * 2^(n-1)) * (1 + jitter). Retry-After hints
from providers are not counted: they are capped by maxRetryAfterMs and vary per response.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from compiler.table import RetryPolicy, Timeouts


def backoff_ms(retry: RetryPolicy, retry_number: int) -> int:
    """Longest wait before retry `retry_number` (1-based)."""
    delay: int = min(retry.max_delay_ms, retry.base_delay_ms * 2 ** (retry_number - 1))
    return math.ceil(delay * (1 + retry.jitter))


@dataclass(frozen=True, slots=True)
class AttemptBudget:
    tries: int
    attempt_ms: int
    backoff_ms: int

    @property
    def total_ms(self) -> int:
        return self.tries * self.attempt_ms + self.backoff_ms


def attempt_budget(retry: RetryPolicy, timeouts: Timeouts) -> AttemptBudget:
    """Worst case for one cluster of the plan."""
    backoff = sum(backoff_ms(retry, n) for n in range(1, retry.max_retries + 1))
    return AttemptBudget(1 + retry.max_retries, timeouts.attempt_ms, backoff)


def unreachable_from(plan_length: int, budget: AttemptBudget, deadline_ms: int) -> int | None:
    """Index of the first plan entry whose attempts may start only after the deadline, or None."""
    for index in range(1, plan_length):
        if index * budget.total_ms >= deadline_ms:
            return index
    return None
