"""What one admission asks of a counter store, and what the store answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from astra_sidecar.compiler.table.fleet import QuotaLimits

Dimension = Literal["requests", "input_tokens", "output_tokens", "budget", "concurrent_streams"]
#: Index of each rate dimension in the stores' arrays (the Lua scripts use the same order).
RATES: tuple[Dimension, ...] = ("requests", "input_tokens", "output_tokens")


class StateUnavailableError(Exception):
    """The shared counters could not be reached in time."""


@dataclass(frozen=True, slots=True)
class Charge:
    """One request's claim on a quota key: the estimate reserved up front."""

    base: str
    limits: QuotaLimits
    input_tokens: int
    output_tokens: int
    lease_id: str | None
    lease_ms: int
    period_id: str
    period_left_ms: int

    def rate(self, index: int) -> tuple[int, int, int]:
        """(limit, window ms, cost) of a rate dimension; limit 0 when the quota has none."""
        rate = (self.limits.requests, self.limits.input_tokens, self.limits.output_tokens)[index]
        cost = (1, self.input_tokens, self.output_tokens)[index]
        return (rate.limit, rate.window_ms, cost) if rate else (0, 0, 0)


@dataclass(frozen=True, slots=True)
class Window:
    """One rate dimension after the decision: units left and ms until it is whole again."""

    limit: int
    remaining: int
    reset_ms: int


@dataclass(frozen=True, slots=True)
class Verdict:
    refused_by: Dimension | None
    retry_after_ms: int
    windows: dict[Dimension, Window]

    @property
    def allowed(self) -> bool:
        return self.refused_by is None


class CounterStore(Protocol):
    async def admit(self, charge: Charge) -> Verdict: ...

    async def settle(self, charge: Charge, input_delta: int, output_delta: int) -> None: ...

    async def close(self) -> None: ...
