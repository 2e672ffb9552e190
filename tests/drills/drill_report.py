"""The drill's report (see `tests.drills.drill`): the /metrics scrape, the breaker transition
checks, the rules a run can break (`violations`) and the one-screen `summary`."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.drills.drill_setup import MEMORY_BOUNDS

#: (monotonic time, cluster key, new state): a plain tuple of atoms, which the garbage collector
#: stops tracking, so recording transitions does not show up as memory growth.
Transition = tuple[float, str, str]


@dataclass
class Snapshot:
    """The state at the end of the main phase, before the abandoned requests."""

    metrics: Metrics
    in_flight: int
    transitions: list[Transition]
    upstreams: dict[str, dict[str, Any]]


def illegal_transitions(seq: list[Transition]) -> int:
    legal = {("closed", "open"), ("open", "half_open"), ("half_open", "closed"), ("half_open", "open")}
    state, bad = "closed", 0
    for _, _, new in seq:
        bad += (state, new) not in legal
        state = new
    return bad


def early_half_opens(seq: list[Transition], cooldown_s: float) -> int:
    """Half-opens sooner than the cooldown after their open (2 ms for the listener's own time)."""
    early = 0
    for (opened, _, before), (half_opened, _, after) in itertools.pairwise(seq):
        if before == "open" and after == "half_open" and half_opened - opened < cooldown_s - 0.002:
            early += 1
    return early


def percentile_ms(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, int(q * (len(sorted_values) - 1) + 0.5))
    return round(sorted_values[index] * 1000.0, 1)


class Metrics:
    """The samples of one /metrics scrape."""

    def __init__(self, rows: list[tuple[str, dict[str, str], float]]) -> None:
        self.rows = rows

    def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        return [(labels, value) for n, labels, value in self.rows if n == name]

    def total(self, name: str) -> float:
        return sum(value for _, value in self.samples(name))

    def value(self, name: str, **labels: str) -> float:
        return sum(v for got, v in self.samples(name) if all(got.get(k) == x for k, x in labels.items()))

    def sum_by(self, name: str, label: str) -> dict[str, float]:
        out: Counter[str] = Counter()
        for labels, value in self.samples(name):
            out[labels[label]] += value
        return dict(sorted(out.items()))


def parse_metrics(text: str) -> Metrics:
    rows = [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]
    return Metrics(rows)


def violations(report: dict[str, Any]) -> list[str]:
    """Every rule the run broke, in words (empty when the drill passed)."""
    out: list[str] = []
    requests, attempts, resources = report["requests"], report["attempts"], report["resources"]
    if report["problems"]["count"]:
        out.append(f"{report['problems']['count']} answers broke a rule: {report['problems']['first']}")
    if requests["lost"]:
        out.append(f"{requests['lost']} requests got no answer")
    if report["requests_metric"] != requests["driven"]:
        out.append(f"astra_requests_total {report['requests_metric']} != {requests['driven']} driven")
    if report["in_flight_after"]:
        out.append(f"{report['in_flight_after']} requests still in flight in the sidecar")
    counted = sum(n for outcome, n in attempts["metrics_by_outcome"].items() if outcome != "breaker_open")
    if counted != attempts["sum_reported"]:
        out.append(
            f"astra_upstream_attempts_total counts {counted:g}, answers report {attempts['sum_reported']}"
        )
    if attempts["sum_reported"] != attempts["upstream_requests"]:
        out.append(
            f"answers report {attempts['sum_reported']} attempts, upstreams saw {attempts['upstream_requests']}"
        )
    for cluster, breaker in report["breakers"].items():
        metric = {k: v for k, v in breaker["transitions_metric"].items() if v}
        recorded = {k: float(v) for k, v in breaker["transitions_recorded"].items()}
        if metric != recorded:
            out.append(f"{cluster}: transitions on /metrics {metric} != recorded {recorded}")
        if breaker["illegal"] or breaker["early_half_open"]:
            out.append(
                f"{cluster}: {breaker['illegal']} illegal, {breaker['early_half_open']} early half-opens"
            )
        if breaker["state_metric"] != breaker["final_recorded"]:
            out.append(
                f"{cluster}: state {breaker['state_metric']} != last transition {breaker['final_recorded']}"
            )
    if resources["fds_after"] != resources["fds_before"]:
        out.append(f"file descriptors: {resources['fds_before']} before, {resources['fds_after']} after")
    if resources["tasks_after"] != resources["tasks_before"]:
        out.append(f"asyncio tasks: {resources['tasks_before']} before, {resources['tasks_after']} after")
    samples = resources["memory_samples"]
    if len(samples) >= 2:
        for key, bound in MEMORY_BOUNDS.items():
            growth = samples[-1][key] - samples[0][key]
            if growth > bound:
                out.append(f"memory: {key} grew by {growth} after warm-up (bound {bound})")
    if report["error_logs"]["count"]:
        out.append(f"{report['error_logs']['count']} error log records: {report['error_logs']['first']}")
    return out


def summary(report: dict[str, Any]) -> str:
    r, a, res = report["requests"], report["attempts"], report["resources"]
    transitions: Counter[str] = Counter()
    for breaker in report["breakers"].values():
        transitions.update({k: int(v) for k, v in breaker["transitions_metric"].items()})
    mem = res["memory_samples"]
    lines = [
        f"requests driven {r['driven']}, answered {r['answered']}, lost {r['lost']} in {report['seconds']} s",
        f"outcomes {r['outcomes']}",
        f"faults injected {report['faults_injected_total']}: {report['faults_injected']}",
        f"attempts reported {a['sum_reported']}, upstream requests {a['upstream_requests']}, "
        f"max by agent {a['max_by_agent']} (limits {a['limit_by_agent']})",
        f"breaker transitions {dict(transitions)}",
        f"latency ms {report['latency_ms']}",
        f"fds {res['fds_before']} -> {res['fds_after']}, tasks {res['tasks_before']} -> {res['tasks_after']}",
        f"memory rss KiB {[s['rss_kib'] for s in mem]}, gc objects {[s['gc_objects'] for s in mem]}",
        f"violations: {report['violations'] or 'none'}",
    ]
    return "\n".join(lines)
