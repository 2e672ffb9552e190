"""The generic cell rate algorithm over a window: `limit` units per `window_ms`, replenished
evenly, a burst of the whole limit allowed (https://en.wikipedia.org/wiki/Generic_cell_rate_algorithm).

The state is one number, the theoretical arrival time (TAT, ms). The Redis store runs the same
arithmetic in Lua (`redis_store.py`); this module is the in-process copy and the reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Step:
    allowed: bool
    tat_ms: float
    wait_ms: float
    remaining: int
    reset_ms: float


def step(tat_ms: float | None, now_ms: float, limit: int, window_ms: int, cost: int) -> Step:
    """Whether `cost` units fit now, and the TAT to store if they do. A cost above the whole
    limit is taken as the limit (it passes on an idle window; the real usage is charged after)."""
    interval = window_ms / limit
    tat = max(tat_ms or now_ms, now_ms)
    new_tat = tat + min(cost, limit) * interval
    wait = new_tat - window_ms - now_ms
    if wait > 0:
        left = max(0, math.floor((window_ms - (tat - now_ms)) / interval + 1e-9))
        return Step(False, tat, wait, left, tat - now_ms)
    left = math.floor((window_ms - (new_tat - now_ms)) / interval + 1e-9)
    return Step(True, new_tat, 0.0, left, new_tat - now_ms)


def adjust(tat_ms: float | None, now_ms: float, limit: int, window_ms: int, delta: int) -> float:
    """The TAT after charging `delta` more units (or refunding them, when negative)."""
    tat = max(tat_ms or now_ms, now_ms)
    return max(now_ms, tat + delta * window_ms / limit)
