"""Counters of one sidecar process (the default store): the same decisions as the Redis store,
on the injected clock. Keys are bounded (least recently written forgotten first).

This store is on the path of every request of an agent with in-process quotas, so it is written
for cost (benchmarks/quota_bench.py): `decide` and `charge` are plain calls (the quota gate calls
them without awaiting), the state is plain dicts bounded by insertion order, and only the
dimensions a quota sets are looked at.
"""

from __future__ import annotations

import math
from typing import TypeVar

from astra_sidecar.sidecar.clock import Clock
from astra_sidecar.sidecar.fleet import gcra
from astra_sidecar.sidecar.fleet.model import RATES, Charge, Dimension, Verdict, Window

_MAX_KEYS = 100_000
V = TypeVar("V")


def _put(store: dict[str, V], key: str, value: V) -> None:
    """Writes `key` as the newest entry; past `_MAX_KEYS` the oldest written goes."""
    store.pop(key, None)
    store[key] = value
    if len(store) > _MAX_KEYS:
        del store[next(iter(store))]


class LocalCounters:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._tats: dict[str, float] = {}
        self._budgets: dict[str, int] = {}
        self._leases: dict[str, dict[str, float]] = {}

    async def admit(self, charge: Charge) -> Verdict:
        return self.decide(charge)

    def decide(self, charge: Charge) -> Verdict:
        """The admission, taken at once (no await: nothing here waits)."""
        now = self._clock.now() * 1000.0
        windows: dict[Dimension, Window] = {}
        refused: Dimension | None = None
        wait = 0.0
        taken: list[tuple[str, float]] = []
        limits = charge.limits
        for index, rate in enumerate((limits.requests, limits.input_tokens, limits.output_tokens)):
            if rate is None:
                continue
            name = RATES[index]
            key = f"{charge.base}:{name}"
            cost = 1 if index == 0 else (charge.input_tokens if index == 1 else charge.output_tokens)
            result = gcra.step(self._tats.get(key), now, rate.limit, rate.window_ms, cost)
            windows[name] = Window(rate.limit, result.remaining, math.ceil(result.reset_ms))
            if result.allowed:
                taken.append((key, result.tat_ms))
            elif result.wait_ms > wait:
                refused, wait = name, result.wait_ms
        budget = limits.budget
        if budget is not None:
            refused, wait = self._budget_check(charge, windows, refused, wait)
        streams = limits.concurrent_streams
        leases = self._live_leases(charge.base, now) if streams and charge.lease_id else None
        if refused is None and leases is not None and streams and len(leases) >= streams:
            refused, wait = "concurrent_streams", 1000.0
        if refused is not None:
            return Verdict(refused, math.ceil(wait), windows)
        for key, tat in taken:
            _put(self._tats, key, tat)
        if budget is not None:
            self._budget_take(charge, windows)
        if leases is not None and charge.lease_id:
            leases[charge.lease_id] = now + charge.lease_ms
        return Verdict(None, 0, windows)

    def _budget_check(
        self, charge: Charge, windows: dict[Dimension, Window], refused: Dimension | None, wait: float
    ) -> tuple[Dimension | None, float]:
        budget = charge.limits.budget
        assert budget is not None
        used = self._budgets.get(f"{charge.base}:budget:{charge.period_id}", 0)
        windows["budget"] = Window(budget.tokens, max(0, budget.tokens - used), charge.period_left_ms)
        if used + charge.input_tokens + charge.output_tokens > budget.tokens:
            return "budget", float(charge.period_left_ms)
        return refused, wait

    def _budget_take(self, charge: Charge, windows: dict[Dimension, Window]) -> None:
        budget = charge.limits.budget
        assert budget is not None
        key = f"{charge.base}:budget:{charge.period_id}"
        used = self._budgets.get(key, 0) + charge.input_tokens + charge.output_tokens
        _put(self._budgets, key, used)
        windows["budget"] = Window(budget.tokens, max(0, budget.tokens - used), charge.period_left_ms)

    def _live_leases(self, base: str, now: float) -> dict[str, float]:
        key = f"{base}:streams"
        leases = self._leases.get(key)
        if leases is None:
            leases = {}
            _put(self._leases, key, leases)
        for lease_id in [k for k, expiry in leases.items() if expiry <= now]:
            del leases[lease_id]
        return leases

    async def settle(self, charge: Charge, input_delta: int, output_delta: int) -> None:
        self.charge(charge, input_delta, output_delta)

    def charge(self, charge: Charge, input_delta: int, output_delta: int) -> None:
        """The settlement, at once: real usage replaces the reservation."""
        now = self._clock.now() * 1000.0
        for index, delta in ((1, input_delta), (2, output_delta)):
            limit, window_ms, _ = charge.rate(index)
            if limit and delta:
                key = f"{charge.base}:{RATES[index]}"
                _put(self._tats, key, gcra.adjust(self._tats.get(key), now, limit, window_ms, delta))
        if charge.limits.budget is not None and (input_delta or output_delta):
            key = f"{charge.base}:budget:{charge.period_id}"
            _put(self._budgets, key, max(0, self._budgets.get(key, 0) + input_delta + output_delta))
        if charge.lease_id:
            self._live_leases(charge.base, now).pop(charge.lease_id, None)

    async def close(self) -> None:
        return None
