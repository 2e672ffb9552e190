"""What a retry policy means in time: the sidecar's backoff, and the worst case behind the AST214
warning and `astra explain`. Both come from `delay_ms`, so they cannot disagree.

Retry n (1-based) of one cluster waits `delay_ms(policy, n)` = min(maxDelayMs, baseDelayMs *
2^(n-1)), shortened at random by up to `jitter` of it (`backoff_s`, as `astra_sidecar.sidecar.resilience.plan`
waits): between delay * (1 - jitter) and delay. Jitter never lengthens a wait, so the worst case
is the un-jittered delay. One cluster of the plan can take (1 + maxRetries) * attemptMs plus those
delays. Retry-After hints from providers are not counted: they are capped by maxRetryAfterMs and
vary per response.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from astra_sidecar.compiler.table.model import RetryPolicy, Timeouts


def delay_ms(policy: RetryPolicy, retry_number: int) -> int:
    """The un-jittered delay before retry `retry_number` (1-based): the longest the wait can be."""
    return min(policy.max_delay_ms, policy.base_delay_ms * (1 << (retry_number - 1)))


def backoff_s(policy: RetryPolicy, retry: int, rng: random.Random) -> float:
    """Seconds to wait before the `retry`-th retry (0-based), jittered down by up to `jitter`."""
    return delay_ms(policy, retry + 1) / 1000.0 * (1.0 - policy.jitter * rng.random())


@dataclass(frozen=True, slots=True)
class AttemptBudget:
    tries: int
    attempt_ms: int
    backoff_ms: int

    @property
    def total_ms(self) -> int:
        return self.tries * self.attempt_ms + self.backoff_ms


def worst_delays_ms(policy: RetryPolicy) -> tuple[int, ...]:
    """The longest wait before each retry, first to last."""
    return tuple(delay_ms(policy, n) for n in range(1, policy.max_retries + 1))


def attempt_budget(retry: RetryPolicy, timeouts: Timeouts) -> AttemptBudget:
    """Worst case for one cluster of the plan."""
    return AttemptBudget(1 + retry.max_retries, timeouts.attempt_ms, sum(worst_delays_ms(retry)))


def unreachable_from(plan_length: int, budget: AttemptBudget, deadline_ms: int) -> int | None:
    """Index of the first plan entry whose attempts may start only after the deadline, or None."""
    for index in range(1, plan_length):
        if index * budget.total_ms >= deadline_ms:
            return index
    return None
