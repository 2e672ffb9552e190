"""The fault drill at CI size: 1,500 requests through chaos upstreams (see `tests.drills.drill`;
`scripts/drill --requests 10000` is the long run)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.drills.drill import run_drill
from tests.drills.drill_report import summary
from tests.drills.drill_setup import AGENTS, MEMORY_BOUNDS, DrillConfig
from tests.fakes.chaos_upstream import KINDS

CONFIG = DrillConfig(requests=1500, concurrency=48, seed=1, abandon=40, sample_every=500)


@pytest.fixture(scope="module")
def report() -> Any:
    # One drill for every assertion below: it takes a few seconds, and each test reads its part.
    return asyncio.run(run_drill(CONFIG))


def test_the_drill_passes_every_check(report: dict[str, Any]) -> None:
    assert report["violations"] == [], summary(report)


def test_every_request_gets_exactly_one_well_formed_answer(report: dict[str, Any]) -> None:
    requests = report["requests"]
    assert (requests["driven"], requests["answered"], requests["lost"]) == (1500, 1500, 0)
    assert sum(requests["outcomes"].values()) == 1500
    assert report["problems"]["count"] == 0
    assert report["requests_metric"] == 1500
    assert report["in_flight_after"] == 0
    assert report["error_logs"]["count"] == 0
    outcomes = requests["outcomes"]
    # Whole answers, streams, errors before the first byte and errors in-stream all occurred.
    assert outcomes["ok"] > 0 and outcomes["ok stream"] > 0
    assert outcomes["error 503 circuit_open"] > 0
    assert any(k.startswith("stream error") for k in outcomes)
    assert any(k.startswith("error 5") and "circuit_open" not in k for k in outcomes)


def test_every_fault_kind_was_injected_many_times(report: dict[str, Any]) -> None:
    faults = report["faults_injected"]
    assert set(faults) == set(KINDS) - {"ok"}
    assert min(faults.values()) >= 20
    assert report["faults_injected_total"] == sum(faults.values()) > 500


def test_attempts_never_exceed_the_policy_and_match_what_upstreams_saw(report: dict[str, Any]) -> None:
    attempts = report["attempts"]
    limits = {a.id: (1 + CONFIG.max_retries) * len(a.plan) for a in AGENTS}
    assert attempts["limit_by_agent"] == limits
    assert all(attempts["max_by_agent"][agent] <= limit for agent, limit in limits.items())
    assert attempts["max_by_agent"]["storm-alone"] == limits["storm-alone"], "retries ran to the limit"
    assert attempts["sum_reported"] == attempts["upstream_requests"]
    counted = sum(n for outcome, n in attempts["metrics_by_outcome"].items() if outcome != "breaker_open")
    assert counted == attempts["sum_reported"]
    assert attempts["retries_metric"] > 0 and attempts["fallbacks_metric"] > 0


def test_breakers_open_half_open_and_close_as_configured(report: dict[str, Any]) -> None:
    breakers = report["breakers"]
    assert len(breakers) == sum(len(a.plan) for a in AGENTS)
    totals = {"open": 0.0, "half_open": 0.0, "closed": 0.0}
    for breaker in breakers.values():
        assert breaker["illegal"] == 0
        assert breaker["early_half_open"] == 0
        assert breaker["state_metric"] == breaker["final_recorded"]
        metric = {k: v for k, v in breaker["transitions_metric"].items() if v}
        assert metric == {k: float(v) for k, v in breaker["transitions_recorded"].items()}
        for state, count in breaker["transitions_metric"].items():
            totals[state] += count
    assert totals["open"] >= 5 and totals["half_open"] >= 5 and totals["closed"] >= 1
    assert report["attempts"]["metrics_by_outcome"]["breaker_open"] > 0


def test_deadlines_hold(report: dict[str, Any]) -> None:
    latency = report["latency_ms"]
    assert latency["max"] <= max(latency["deadline_by_agent"].values()) + CONFIG.slack_ms
    outcomes = report["requests"]["outcomes"]
    assert (
        outcomes.get("stream error deadline_exceeded", 0) + outcomes.get("error 504 deadline_exceeded", 0) > 0
    )


def test_nothing_is_left_behind(report: dict[str, Any]) -> None:
    resources = report["resources"]
    assert resources["fds_after"] == resources["fds_before"]
    assert resources["tasks_after"] == resources["tasks_before"]
    samples = resources["memory_samples"]
    assert [s["requests"] for s in samples] == [500, 1000, 1500]
    for key, bound in MEMORY_BOUNDS.items():
        assert samples[-1][key] - samples[0][key] <= bound, key
    assert report["requests"]["abandoned_by_client"] > 0
