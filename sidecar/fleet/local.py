"""Counters of one sidecar process (the default store): the same decisions as the Redis store,
on the injected clock. Keys are bounded (least recently used forgotten first)."""

from __future__ import annotations

import math

from cachetools import LRUCache

from astra_sidecar.sidecar.clock import Clock
from astra_sidecar.sidecar.fleet import gcra
from astra_sidecar.sidecar.fleet.model import RATES, Charge, Dimension, Verdict, Window

_MAX_KEYS = 100_000


class LocalCounters:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._tats: LRUCache[str, float] = LRUCache(_MAX_KEYS)
        self._budgets: LRUCache[str, int] = LRUCache(_MAX_KEYS)
        self._leases: LRUCache[str, dict[str, float]] = LRUCache(_MAX_KEYS)

    def _now_ms(self) -> float:
        return self._clock.now() * 1000.0

    async def admit(self, charge: Charge) -> Verdict:
        now = self._now_ms()
        windows: dict[Dimension, Window] = {}
        refused: Dimension | None = None
        wait = 0.0
        taken: dict[str, float] = {}
        for index, name in enumerate(RATES):
            limit, window_ms, cost = charge.rate(index)
            if not limit:
                continue
            key = f"{charge.base}:{name}"
            result = gcra.step(self._tats.get(key), now, limit, window_ms, cost)
            windows[name] = Window(limit, result.remaining, math.ceil(result.reset_ms))
            if result.allowed:
                taken[key] = result.tat_ms
            elif result.wait_ms > wait:
                refused, wait = name, result.wait_ms
        budget = charge.limits.budget
        budget_key = f"{charge.base}:budget:{charge.period_id}"
        if budget is not None:
            used = self._budgets.get(budget_key, 0)
            windows["budget"] = Window(budget.tokens, max(0, budget.tokens - used), charge.period_left_ms)
            if used + charge.input_tokens + charge.output_tokens > budget.tokens:
                refused, wait = "budget", float(charge.period_left_ms)
        leases = self._live_leases(charge.base, now)
        streams = charge.limits.concurrent_streams
        if refused is None and streams and charge.lease_id and len(leases) >= streams:
            refused, wait = "concurrent_streams", 1000.0
        if refused is not None:
            return Verdict(refused, math.ceil(wait), windows)
        self._tats.update(taken)
        if budget is not None:
            used = self._budgets.get(budget_key, 0) + charge.input_tokens + charge.output_tokens
            self._budgets[budget_key] = used
            windows["budget"] = Window(budget.tokens, max(0, budget.tokens - used), charge.period_left_ms)
        if streams and charge.lease_id:
            leases[charge.lease_id] = now + charge.lease_ms
        return Verdict(None, 0, windows)

    def _live_leases(self, base: str, now: float) -> dict[str, float]:
        leases = self._leases.get(f"{base}:streams")
        if leases is None:
            leases = self._leases[f"{base}:streams"] = {}
        for lease_id in [k for k, expiry in leases.items() if expiry <= now]:
            del leases[lease_id]
        return leases

    async def settle(self, charge: Charge, input_delta: int, output_delta: int) -> None:
        now = self._now_ms()
        for index, delta in ((1, input_delta), (2, output_delta)):
            limit, window_ms, _ = charge.rate(index)
            if limit and delta:
                key = f"{charge.base}:{RATES[index]}"
                self._tats[key] = gcra.adjust(self._tats.get(key), now, limit, window_ms, delta)
        if charge.limits.budget is not None and (input_delta or output_delta):
            key = f"{charge.base}:budget:{charge.period_id}"
            self._budgets[key] = max(0, self._budgets.get(key, 0) + input_delta + output_delta)
        if charge.lease_id:
            self._live_leases(charge.base, now).pop(charge.lease_id, None)

    async def close(self) -> None:
        return None
