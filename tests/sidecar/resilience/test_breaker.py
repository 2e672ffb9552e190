"""`ClusterBreaker` (sidecar/resilience/breaker.py) on a ManualClock: every transition, every edge.

The policy (`astra_sidecar.compiler.table.BreakerPolicy`): closed → open at `failure_threshold`
failures inside `window_ms`; open refuses until `cooldown_ms` have passed, then half-open lets one
probe at a time through; `success_threshold` probe successes close it, one probe failure re-opens it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from astra_sidecar.compiler.table import BreakerPolicy
from astra_sidecar.sidecar.clock import ManualClock
from astra_sidecar.sidecar.resilience.breaker import CLOSED, HALF_OPEN, OPEN, ClusterBreaker, Permit

#: The window is longer than the cooldown, so failures from before an opening are still inside
#: the window after it: only an explicit reset can forget them.
POLICY = BreakerPolicy(failure_threshold=3, window_ms=60_000, cooldown_ms=30_000, success_threshold=2)
WINDOW_S = POLICY.window_ms / 1000.0
COOLDOWN_S = POLICY.cooldown_ms / 1000.0
#: The smallest step the edge tests take: a binary fraction, so the clock's sums stay exact and
#: "one tick before the boundary" and "at the boundary" are exactly what they say.
TICK = 1 / 1024

Change = tuple[str, str]


@dataclass
class Rig:
    breaker: ClusterBreaker
    clock: ManualClock
    changes: list[Change] = field(default_factory=list)

    def permit(self) -> Permit:
        permit = self.breaker.acquire()
        assert permit is not None, f"the breaker refused a permit in state {self.breaker.state}"
        return permit

    def fail(self, times: int = 1) -> None:
        for _ in range(times):
            self.permit().failure()

    def trip(self) -> None:
        """Closed → open, by exactly as many failures as the threshold."""
        self.fail(self.breaker.policy.failure_threshold)
        assert self.breaker.state == OPEN

    def half_open(self) -> Permit:
        """Open → half-open, after exactly the cooldown: the probe's permit."""
        self.clock.advance(self.breaker.policy.cooldown_ms / 1000.0)
        probe = self.permit()
        assert (self.breaker.state, probe.probe) == (HALF_OPEN, True)
        return probe


def rig(**overrides: int) -> Rig:
    """A breaker on `POLICY` with `overrides`, its clock, and the transitions it reports."""
    clock = ManualClock()
    changes: list[Change] = []
    breaker = ClusterBreaker(
        "openai:gpt-test:http://upstream/v1",
        dataclasses.replace(POLICY, **overrides),
        clock,
        on_change=lambda old, new: changes.append((old, new)),
    )
    return Rig(breaker, clock, changes)


# --- closed → open ---------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [1, 3, 5])
def test_opens_at_exactly_the_failure_threshold_and_not_one_before(threshold: int) -> None:
    r = rig(failure_threshold=threshold)
    r.fail(threshold - 1)
    assert r.breaker.state == CLOSED
    assert r.changes == []
    r.fail()
    assert r.breaker.state == OPEN
    assert r.breaker.acquire() is None
    assert r.changes == [(CLOSED, OPEN)]


def test_a_failure_exactly_one_window_old_no_longer_counts() -> None:
    r = rig()
    r.fail(2)
    r.clock.advance(WINDOW_S)
    r.fail()
    assert r.breaker.state == CLOSED, "the two old failures left the window as it reached them"


def test_a_failure_one_tick_younger_than_the_window_still_counts() -> None:
    r = rig()
    r.fail(2)
    r.clock.advance(WINDOW_S - TICK)
    r.fail()
    assert r.breaker.state == OPEN


def test_the_window_slides_with_each_failure() -> None:
    r = rig()
    r.fail()  # at 0 s
    r.clock.advance(31.0)
    r.fail()  # at 31 s
    r.clock.advance(31.0)
    r.fail()  # at 62 s: the one at 0 s has left the window
    assert r.breaker.state == CLOSED
    r.clock.advance(8.0)
    r.fail()  # at 70 s: 31, 62 and 70 s are inside the window ending at 70 s
    assert r.breaker.state == OPEN


def test_successes_while_closed_do_not_reset_the_failure_count() -> None:
    r = rig()
    r.fail(2)
    for _ in range(5):
        r.permit().success()
    r.fail()
    assert r.breaker.state == OPEN, "failures count within the window, not consecutively"


def test_released_permits_count_neither_way() -> None:
    r = rig()
    for _ in range(5):
        r.permit().release()
    r.fail(2)
    assert r.breaker.state == CLOSED
    r.fail()
    assert r.breaker.state == OPEN


def test_a_permit_reports_only_its_first_outcome() -> None:
    r = rig()
    permit = r.permit()
    permit.failure()
    permit.failure()
    permit.failure()
    r.permit().failure()
    assert r.breaker.state == CLOSED, "two failures counted, not four"
    released = r.permit()
    released.release()
    released.failure()
    assert r.breaker.state == CLOSED, "a released permit's later failure is ignored"


def test_closing_forgets_the_failures_from_before_the_opening() -> None:
    r = rig(success_threshold=1)
    r.trip()
    r.half_open().success()
    assert r.breaker.state == CLOSED
    r.fail(2)  # the three old failures are still inside the 60 s window, but were reset
    assert r.breaker.state == CLOSED
    r.fail()
    assert r.breaker.state == OPEN


# --- open ------------------------------------------------------------------------------------------


def test_open_refuses_every_permit_until_one_tick_before_the_cooldown() -> None:
    r = rig()
    r.trip()
    r.changes.clear()
    for _ in range(3):
        assert r.breaker.acquire() is None
    r.clock.advance(COOLDOWN_S - TICK)
    assert r.breaker.acquire() is None
    assert r.breaker.state == OPEN
    assert r.changes == [], "refusing a permit changes nothing"


def test_half_opens_at_exactly_the_cooldown() -> None:
    r = rig()
    r.trip()
    r.clock.advance(COOLDOWN_S - TICK)
    assert r.breaker.acquire() is None
    r.clock.advance(TICK)
    probe = r.breaker.acquire()
    assert probe is not None and probe.probe
    assert r.breaker.state == HALF_OPEN
    assert r.changes == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]


def test_the_cooldown_runs_from_the_opening_not_from_the_first_failure() -> None:
    r = rig()
    r.fail()
    r.clock.advance(20.0)
    r.fail(2)  # opens at 20 s
    r.clock.advance(COOLDOWN_S - TICK)
    assert r.breaker.acquire() is None, "30 s after the first failure, but not after the opening"
    r.clock.advance(TICK)
    assert r.breaker.acquire() is not None


def test_failures_reported_while_open_neither_reopen_nor_restart_the_cooldown() -> None:
    r = rig()
    late = [r.permit() for _ in range(3)]  # taken while closed, they report after the opening
    r.trip()
    r.clock.advance(10.0)
    for permit in late:
        permit.failure()
    r.clock.advance(COOLDOWN_S - 10.0)
    assert r.permit().probe, "the cooldown still ran from the opening"
    assert r.changes == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]


# --- half-open -------------------------------------------------------------------------------------


def test_half_open_admits_one_probe_and_refuses_more_while_it_runs() -> None:
    r = rig()
    r.trip()
    r.half_open()
    for _ in range(3):
        assert r.breaker.acquire() is None
    assert r.breaker.state == HALF_OPEN


@pytest.mark.parametrize("threshold", [1, 2, 3])
def test_closes_at_exactly_the_success_threshold_and_not_one_before(threshold: int) -> None:
    r = rig(success_threshold=threshold)
    r.trip()
    probe = r.half_open()
    for _ in range(threshold - 1):
        probe.success()
        assert r.breaker.state == HALF_OPEN
        probe = r.permit()
        assert probe.probe, "still half-open: the next attempt is a probe again"
    r.changes.clear()
    probe.success()
    assert r.breaker.state == CLOSED
    assert r.changes == [(HALF_OPEN, CLOSED)]
    assert [r.permit().probe for _ in range(3)] == [False] * 3, "closed: ordinary permits, no limit"


def test_a_probe_failure_reopens_at_once() -> None:
    r = rig()
    r.trip()
    probe = r.half_open()
    r.changes.clear()
    probe.failure()
    assert r.breaker.state == OPEN
    assert r.breaker.acquire() is None
    assert r.changes == [(HALF_OPEN, OPEN)]


def test_a_reopened_breaker_waits_a_full_cooldown_from_the_reopening() -> None:
    r = rig()
    r.trip()
    r.clock.advance(COOLDOWN_S + 100.0)
    probe = r.permit()
    probe.failure()
    r.clock.advance(COOLDOWN_S - TICK)
    assert r.breaker.acquire() is None
    r.clock.advance(TICK)
    assert r.permit().probe


def test_probe_successes_do_not_carry_over_into_the_next_half_open() -> None:
    r = rig(success_threshold=2)
    r.trip()
    r.half_open().success()
    r.permit().failure()  # the second probe fails: open again
    probe = r.half_open()
    probe.success()
    assert r.breaker.state == HALF_OPEN, "one success in this half-open period, two needed"
    r.permit().success()
    assert r.breaker.state == CLOSED


def test_a_released_probe_frees_the_slot_and_counts_neither_way() -> None:
    r = rig(success_threshold=2)
    r.trip()
    r.half_open().success()
    r.permit().release()
    assert r.breaker.state == HALF_OPEN, "a release is neither a success nor a failure"
    probe = r.permit()
    assert probe.probe, "the slot is free again"
    probe.success()
    assert r.breaker.state == CLOSED, "the success before the release still counts"


def test_ordinary_permits_reporting_late_do_not_move_a_half_open_breaker() -> None:
    r = rig(success_threshold=1)
    late_success, late_failure = r.permit(), r.permit()
    r.trip()
    probe = r.half_open()
    late_success.success()
    late_failure.failure()
    assert r.breaker.state == HALF_OPEN
    assert r.breaker.acquire() is None, "the probe is still the one in flight"
    probe.success()
    assert r.breaker.state == CLOSED


# --- the listener ----------------------------------------------------------------------------------


def test_on_change_gets_every_transition_once_in_order_as_old_and_new_state() -> None:
    r = rig(success_threshold=2)
    assert r.changes == [], "constructing a breaker is no transition"
    r.fail(2)
    r.permit().success()
    r.fail()
    assert r.breaker.state == OPEN
    r.half_open().failure()
    r.half_open().success()
    r.permit().success()
    assert r.changes == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
    ]


def test_a_breaker_without_a_listener_transitions_the_same() -> None:
    clock = ManualClock()
    breaker = ClusterBreaker("k", POLICY, clock)
    for _ in range(POLICY.failure_threshold):
        permit = breaker.acquire()
        assert permit is not None
        permit.failure()
    assert breaker.state == OPEN
    clock.advance(COOLDOWN_S)
    probe = breaker.acquire()
    assert probe is not None and breaker.state == HALF_OPEN


# --- a store behind the breaker (circuitBreaker.shared) ----------------------------------------------


@dataclass
class FleetState:
    """An in-memory stand-in for sidecar/fleet/breaker_store.py: what the breaker tells the fleet,
    and the opening another replica decided (`open_left_ms`)."""

    open_left_ms: int | None = 0
    failures: list[str] = field(default_factory=list)
    openings: list[str] = field(default_factory=list)
    opened_by_fleet: int = 0

    async def open_ms(self, cluster: str) -> int | None:
        return self.open_left_ms

    def failed(self, cluster: str, policy: BreakerPolicy, opened: Callable[[int], None]) -> None:
        self.failures.append(cluster)
        if self.opened_by_fleet:
            opened(self.opened_by_fleet)

    def opened(self, cluster: str, policy: BreakerPolicy) -> None:
        self.openings.append(cluster)


def shared_rig(state: FleetState) -> Rig:
    r = rig()
    r.breaker.store = state
    return r


async def test_an_opening_elsewhere_opens_this_breaker_for_what_is_left_of_it() -> None:
    state = FleetState(open_left_ms=10_000)
    r = shared_rig(state)
    await r.breaker.sync()
    assert r.breaker.state == OPEN and r.breaker.acquire() is None
    assert state.openings == []  # adopted, not published again
    r.clock.advance(10.0 - TICK)
    assert r.breaker.acquire() is None
    r.clock.advance(TICK)
    assert r.permit().probe  # the cooldown ended when the fleet's opening did


async def test_without_an_opening_or_without_redis_the_breaker_stays_closed() -> None:
    for left in (0, None):
        r = shared_rig(FleetState(open_left_ms=left))
        await r.breaker.sync()
        assert r.breaker.state == CLOSED


def test_counted_failures_go_to_the_fleet_and_an_opening_is_published_once() -> None:
    state = FleetState()
    r = shared_rig(state)
    r.fail(2)
    assert (len(state.failures), state.openings) == (2, [])
    r.fail()  # the local threshold: published as an opening, not recorded as a failure
    assert (len(state.failures), state.openings) == (2, [r.breaker.name])


def test_the_fleets_count_reaching_the_threshold_opens_this_breaker() -> None:
    state = FleetState(opened_by_fleet=60_000)
    r = shared_rig(state)
    r.fail()
    assert r.breaker.state == OPEN
    assert state.openings == []
