"""The circuit breaker of one cluster: closed, open or half-open, on an injected clock.

- window counting: open after `failure_threshold` failures within `window_ms` (not merely
  consecutive ones), on the injected clock, so tests need no real waiting;
- a single probe: after `cooldown_ms` the breaker goes half-open and lets exactly one attempt
  through at a time; `success_threshold` probe successes close it, one failure re-opens it;
- attempts whose outcome is known late (a stream that completes or is cut) report back through a
  `Permit`;
- every transition is reported to `on_change(old, new)` (metrics, logs);
- optionally a `BreakerStore` behind it (`circuitBreaker.shared`, `astra_sidecar.sidecar.fleet.
  breaker_store`): counted failures and openings go to the fleet's state, and `sync()` before an
  attempt opens this breaker for what is left of an opening another replica decided.

The state machine is these few lines rather than a library's: what a breaker library adds (its
own call wrapper, consecutive-failure counting, a Redis storage of its own) is what the sidecar
does differently, and the one such library on PyPI for asyncio imports redis-py when present.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol

from astra_sidecar.compiler.table import BreakerPolicy
from astra_sidecar.sidecar.clock import Clock

StateListener = Callable[[str, str], None]

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


class BreakerStore(Protocol):
    """The fleet's state of breakers, by cluster key (`astra_sidecar.sidecar.fleet.breaker_store`)."""

    async def open_ms(self, cluster: str) -> int | None: ...

    def failed(self, cluster: str, policy: BreakerPolicy, opened: Callable[[int], None]) -> None: ...

    def opened(self, cluster: str, policy: BreakerPolicy) -> None: ...


class _FailureWindow:
    """The failures inside the last `window_s` seconds of the injected clock."""

    __slots__ = ("_clock", "_failures", "_window_s")

    def __init__(self, clock: Clock, window_s: float) -> None:
        self._clock = clock
        self._window_s = window_s
        self._failures: deque[float] = deque()

    def add(self) -> None:
        self._failures.append(self._clock.now())

    def clear(self) -> None:
        self._failures.clear()

    @property
    def count(self) -> int:
        horizon = self._clock.now() - self._window_s
        while self._failures and self._failures[0] <= horizon:
            self._failures.popleft()
        return len(self._failures)


class Permit:
    """Permission for one attempt. Report its outcome exactly once (later reports are ignored)."""

    __slots__ = ("_breaker", "_done", "probe")

    def __init__(self, breaker: ClusterBreaker, probe: bool) -> None:
        self._breaker = breaker
        self.probe = probe
        self._done = False

    def success(self) -> None:
        if not self._done:
            self._done = True
            self._breaker._on_success(self)

    def failure(self) -> None:
        if not self._done:
            self._done = True
            self._breaker._on_failure(self)

    def release(self) -> None:
        """The attempt ended without a verdict on the provider (e.g. the client's own mistake)."""
        if not self._done:
            self._done = True
            self._breaker._on_release(self)


class ClusterBreaker:
    def __init__(
        self,
        name: str,
        policy: BreakerPolicy,
        clock: Clock,
        on_change: StateListener | None = None,
        store: BreakerStore | None = None,
    ) -> None:
        self.name = name
        self.policy = policy
        self.store = store
        self._clock = clock
        self._failures = _FailureWindow(clock, policy.window_ms / 1000.0)
        self._on_change = on_change
        self._state = CLOSED
        self._opened_at = 0.0
        self._probe_in_flight = False
        self._probe_successes = 0

    @property
    def state(self) -> str:
        return self._state

    def _become(self, state: str) -> None:
        old, self._state = self._state, state
        if state == CLOSED:
            self._failures.clear()
        if self._on_change is not None and old != state:
            self._on_change(old, state)

    async def sync(self) -> None:
        """Adopts an opening of the fleet's breaker (no-op without a store, or when Redis is away)."""
        if self.store is None:
            return
        left_ms = await self.store.open_ms(self.name)
        if left_ms:
            self._open_remotely(left_ms)

    def _open_remotely(self, left_ms: int) -> None:
        """Open for the `left_ms` that remain of an opening decided elsewhere (not published again)."""
        if self._state != CLOSED:
            return
        self._opened_at = self._clock.now() - (self.policy.cooldown_ms - left_ms) / 1000.0
        self._become(OPEN)

    def acquire(self) -> Permit | None:
        """A permit for one attempt, or None when the breaker refuses (open, or probe busy)."""
        if self._state == OPEN:
            if self._clock.now() - self._opened_at < self.policy.cooldown_ms / 1000.0:
                return None
            self._become(HALF_OPEN)
            self._probe_successes = 0
        if self._state == HALF_OPEN:
            if self._probe_in_flight:
                return None
            self._probe_in_flight = True
            return Permit(self, probe=True)
        return Permit(self, probe=False)

    def _on_success(self, permit: Permit) -> None:
        if not permit.probe:
            return
        self._probe_in_flight = False
        if self._state != HALF_OPEN:
            return
        self._probe_successes += 1
        if self._probe_successes >= self.policy.success_threshold:
            self._become(CLOSED)

    def _on_failure(self, permit: Permit) -> None:
        if permit.probe:
            self._probe_in_flight = False
            if self._state == HALF_OPEN:
                self._open()
            return
        if self._state != CLOSED:
            return
        self._failures.add()
        if self._failures.count >= self.policy.failure_threshold:
            self._open()
        elif self.store is not None:
            self.store.failed(self.name, self.policy, self._open_remotely)

    def _on_release(self, permit: Permit) -> None:
        if permit.probe:
            self._probe_in_flight = False

    def _open(self) -> None:
        self._opened_at = self._clock.now()
        self._become(OPEN)
        if self.store is not None:
            self.store.opened(self.name, self.policy)
