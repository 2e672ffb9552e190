"""The hostile-client drill at CI size (tests/drills/hostile_client.py; `scripts/hostile-drill`
is the long run): slowloris, slow bodies and idle connections closed by their bounds, stalled
readers cut, 10,000 bogus model names answered 404 without a new metric label, log-injection
strings kept inside one JSON access line each, valid 8 MiB bodies several at once answered; the
healthy probe agent never waiting behind the attack, the sidecar's loop never blocked, and its fds and tasks back where they were."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.drills.hostile_client import ClientDrillConfig, run_client_drill
from tests.drills.hostile_rig import summary

CONFIG = ClientDrillConfig(slowloris=100, slow_bodies=50, slow_readers=20, idle=2000, bogus_models=10_000)
PROBE_WORST_MS = 1000.0  # generous for a shared CI machine, far below a frozen loop
BUSY_LAG_MS = 100.0  # tests.drills.hostile_sidecar.LagProbe
#: The stalled readers hold what their stall bound lets them (tests.sidecar.hostile.test_clients
#: bounds one stream's buffer); RSS also keeps the allocator's high-water mark.
RSS_GROWTH_KIB = 96 * 1024
LARGE = "large-json-bodies"
#: Valid 8 MiB bodies, 4 at once: each is parsed in slices on the loop (sidecar/large_json.py),
#: its validation, policy, upstream encoding and release run in the large-body lane's thread
#: (sidecar/serving/off_loop.py), which hands the loop the GIL every millisecond but for C calls
#: (orjson encoding 8 MiB: ~13 ms) and the collector. Measured 36-43 ms here (the lane's steps on
#: the loop: 290-355 ms on a VM about half as fast, 1.3-1.7 s with orjson parsing in one call).
LARGE_BUSY_LAG_MS = 150.0
#: Each parsed 8 MiB body of small messages is about 50 MiB of objects, plus its bytes and its
#: upstream encoding: measured 300-380 MiB peak for 4 at once.
LARGE_RSS_GROWTH_KIB = CONFIG.large_bodies * 128 * 1024


@pytest.fixture(scope="module")
def report() -> Any:
    return asyncio.run(run_client_drill(CONFIG))


def test_every_hostile_client_is_cut_by_its_bound_and_nothing_is_lost(report: dict[str, Any]) -> None:
    assert report["lost"] == 0, summary(report)
    outcomes = {p["name"]: p["outcomes"] for p in report["phases"]}
    assert outcomes == {
        "slowloris": {"closed by the header timeout": CONFIG.slowloris},
        "slow-body": {"408 request_timeout": CONFIG.slow_bodies},
        "slow-readers": {"cut as stalled": CONFIG.slow_readers},
        "idle-connections": {"closed when idle": CONFIG.idle},
        "bogus-models": {"404 model_not_found": CONFIG.bogus_models},
        "log-injection": {"404": 14 * CONFIG.injection_rounds},
        "large-json-bodies": {"200": CONFIG.large_bodies * CONFIG.large_rounds},
    }, summary(report)
    idle = next(p for p in report["phases"] if p["name"] == "idle-connections")
    assert idle["notes"]["open_at_peak"] >= CONFIG.idle


def test_clients_strings_reach_no_metric_label_and_every_access_line_is_one_json_line(
    report: dict[str, Any],
) -> None:
    bogus = next(p for p in report["phases"] if p["name"] == "bogus-models")
    assert bogus["notes"]["label_sets_added"] == 0
    lines = report["access_lines"]
    assert lines["not_one_json_line"] == 0 and lines["client_stalled"] == CONFIG.slow_readers
    assert lines["lines"] >= CONFIG.bogus_models + 14 * CONFIG.injection_rounds + CONFIG.slow_bodies


def test_the_healthy_probe_never_waits_behind_a_hostile_client(report: dict[str, Any]) -> None:
    assert report["probe_failures"] == 0, summary(report)
    assert all(p["probe_requests"] > 0 for p in report["phases"])
    assert report["probe_worst_ms"] < PROBE_WORST_MS, summary(report)
    attacks = [p for p in report["phases"] if p["name"] != LARGE]
    assert max(p["worst_busy_lag_ms"] for p in attacks) < BUSY_LAG_MS, summary(report)
    (large,) = [p for p in report["phases"] if p["name"] == LARGE]
    assert large["worst_busy_lag_ms"] < LARGE_BUSY_LAG_MS, summary(report)


def test_memory_stays_bounded_and_nothing_is_left_behind(report: dict[str, Any]) -> None:
    before, after = report["before"], report["after"]
    peaks = {p["name"]: p["peak_rss_kib"] for p in report["phases"]}  # the large bodies go last
    assert max(v for k, v in peaks.items() if k != LARGE) - before["rss_kib"] < RSS_GROWTH_KIB, summary(
        report
    )
    assert peaks[LARGE] - before["rss_kib"] < LARGE_RSS_GROWTH_KIB, summary(report)
    assert (after["fds"], after["tasks"], after["connections"]) == (before["fds"], before["tasks"], 1)
