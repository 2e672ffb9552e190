"""The hostile-upstream drill at CI size (tests/drills/hostile_upstream.py; `scripts/hostile-drill`
is the long run): every hostile answer refused cleanly, none lost, the healthy probe agent never
waiting behind the attack, the sidecar's loop never blocked, memory bounded by the limits, and
the sidecar's fds and tasks back to where they were."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from astra_sidecar.sidecar.limits import DEFAULT_LIMITS, MIB
from tests.drills.hostile_rig import summary
from tests.drills.hostile_upstream import EXPECTED, UpstreamDrillConfig, run_upstream_drill

CONFIG = UpstreamDrillConfig(per_kind=2, rounds=1)
#: Generous for a shared CI machine, and still far below a frozen loop (the 14.6 s and 64 s the
#: issue measured before the limits).
PROBE_WORST_MS = 1000.0
#: The loop's busy lag: how long one stretch of the sidecar's own callbacks kept a 5 ms sleeper
#: waiting (tests.drills.hostile_sidecar.LagProbe).
BUSY_LAG_MS = 100.0


@pytest.fixture(scope="module")
def report() -> Any:
    return asyncio.run(run_upstream_drill(CONFIG))


def test_every_hostile_answer_is_refused_and_none_is_lost(report: dict[str, Any]) -> None:
    assert report["lost"] == 0, summary(report)
    assert [p["name"] for p in report["phases"]] == list(EXPECTED)
    for phase in report["phases"]:
        assert phase["outcomes"] == {"refused as expected": CONFIG.per_kind * CONFIG.rounds}, phase


def test_the_healthy_probe_never_waits_behind_a_hostile_upstream(report: dict[str, Any]) -> None:
    assert report["probe_failures"] == 0, summary(report)
    assert all(p["probe_requests"] > 0 for p in report["phases"])
    assert report["probe_worst_ms"] < PROBE_WORST_MS, summary(report)
    assert report["worst_busy_lag_ms"] < BUSY_LAG_MS, summary(report)


def test_memory_stays_bounded_and_nothing_is_left_behind(report: dict[str, Any]) -> None:
    before, after = report["before"], report["after"]
    # At most two whole answers per concurrent request held while read (parts, then the join).
    bound_kib = before["rss_kib"] + (CONFIG.per_kind * 2 * DEFAULT_LIMITS.max_answer_bytes + 64 * MIB) // 1024
    assert report["peak_rss_kib"] < bound_kib, summary(report)
    assert (after["fds"], after["tasks"]) == (before["fds"], before["tasks"]), summary(report)
