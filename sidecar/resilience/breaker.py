"""The circuit breaker of one cluster, on aiobreaker's state machine with an injected clock.

aiobreaker holds the state (closed / open / half-open), performs the transitions and notifies
listeners (metrics, logs). This module decides *when* to transition, because the sidecar needs
what aiobreaker's own call wrapper does not give:

- window counting: open after `failure_threshold` failures within `window_ms` (not merely
  consecutive ones), on the injected clock, so tests need no real waiting;
- a single probe: after `cooldown_ms` the breaker goes half-open and lets exactly one attempt
  through at a time; `success_threshold` probe successes close it, one failure re-opens it;
- attempts whose outcome is known late (a stream that completes or is cut) report back through a
  `Permit`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from aiobreaker import CircuitBreaker, CircuitBreakerListener, CircuitBreakerState
from aiobreaker.storage.memory import CircuitMemoryStorage

from astra_sidecar.compiler.table import BreakerPolicy
from astra_sidecar.sidecar.clock import Clock

StateListener = Callable[[str, str], None]

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"

_NAMES = {
    CircuitBreakerState.CLOSED: CLOSED,
    CircuitBreakerState.OPEN: OPEN,
    CircuitBreakerState.HALF_OPEN: HALF_OPEN,
}


class _WindowedStorage(CircuitMemoryStorage):  # type: ignore[misc]
    """aiobreaker storage whose failure counter only counts failures inside the window."""

    def __init__(self, clock: Clock, window_s: float) -> None:
        super().__init__(CircuitBreakerState.CLOSED)
        self._clock = clock
        self._window_s = window_s
        self._failures: deque[float] = deque()

    def increment_counter(self) -> None:
        self._failures.append(self._clock.now())

    def reset_counter(self) -> None:
        self._failures.clear()

    @property
    def counter(self) -> int:
        horizon = self._clock.now() - self._window_s
        while self._failures and self._failures[0] <= horizon:
            self._failures.popleft()
        return len(self._failures)


class _Notify(CircuitBreakerListener):  # type: ignore[misc]
    def __init__(self, callback: StateListener) -> None:
        self._callback = callback

    def state_change(self, breaker: Any, old: Any, new: Any) -> None:
        self._callback(_NAMES[old.state] if old is not None else CLOSED, _NAMES[new.state])


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
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._storage = _WindowedStorage(clock, policy.window_ms / 1000.0)
        self._breaker = CircuitBreaker(
            fail_max=policy.failure_threshold, state_storage=self._storage, name=name
        )
        if on_change is not None:
            self._breaker.add_listener(_Notify(on_change))
        self._opened_at = 0.0
        self._probe_in_flight = False
        self._probe_successes = 0

    @property
    def state(self) -> str:
        return _NAMES[self._breaker.current_state]

    def acquire(self) -> Permit | None:
        """A permit for one attempt, or None when the breaker refuses (open, or probe busy)."""
        state = self._breaker.current_state
        if state is CircuitBreakerState.OPEN:
            if self._clock.now() - self._opened_at < self.policy.cooldown_ms / 1000.0:
                return None
            self._breaker.half_open()
            self._probe_successes = 0
            state = CircuitBreakerState.HALF_OPEN
        if state is CircuitBreakerState.HALF_OPEN:
            if self._probe_in_flight:
                return None
            self._probe_in_flight = True
            return Permit(self, probe=True)
        return Permit(self, probe=False)

    def _on_success(self, permit: Permit) -> None:
        if not permit.probe:
            return
        self._probe_in_flight = False
        if self._breaker.current_state is not CircuitBreakerState.HALF_OPEN:
            return
        self._probe_successes += 1
        if self._probe_successes >= self.policy.success_threshold:
            self._breaker.close()

    def _on_failure(self, permit: Permit) -> None:
        if permit.probe:
            self._probe_in_flight = False
            if self._breaker.current_state is CircuitBreakerState.HALF_OPEN:
                self._open()
            return
        if self._breaker.current_state is not CircuitBreakerState.CLOSED:
            return
        self._storage.increment_counter()
        if self._storage.counter >= self.policy.failure_threshold:
            self._open()

    def _on_release(self, permit: Permit) -> None:
        if permit.probe:
            self._probe_in_flight = False

    def _open(self) -> None:
        self._opened_at = self._clock.now()
        self._breaker.open()
