"""What both hostile drills share (tests/drills/hostile_upstream.py, hostile_client.py): the
sidecar in its own process (tests.drills.hostile_sidecar), a healthy probe agent's client in
another, and one `Phase` record per attack with the figures the report gives.

The probe is a plain HTTP/1.1 client that asks the sidecar's mock agent for a whole answer every
`PROBE_EVERY_S`, on one kept-alive connection, in a process of its own so that the attack's
client work (which runs in the drill's process) cannot delay it: its worst latency is how long a
healthy agent waited while the attack ran.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import multiprocessing
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

PROBE_EVERY_S = 0.02
PROBE_AGENT = "probe"
PROBE_BODY = json.dumps({"model": PROBE_AGENT, "messages": [{"role": "user", "content": "ping"}]}).encode()


def _probe_loop(port: int, ready: Any, stop: Any, results: Connection) -> None:
    latencies: list[float] = []
    failures = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while not stop.is_set():
        if latencies and not ready.is_set():
            ready.set()
        started = time.perf_counter()
        try:
            conn.request("POST", "/v1/chat/completions", PROBE_BODY, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            ok = False
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        latencies.append(time.perf_counter() - started)
        failures += not ok
        time.sleep(PROBE_EVERY_S)
    conn.close()
    results.send((latencies, failures))


class Probe:
    """The healthy agent's client, in a process of its own, for one phase."""

    def __init__(self, port: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._ready, self._stop = context.Event(), context.Event()
        self._results, sender = context.Pipe(duplex=False)
        self._process = context.Process(target=_probe_loop, args=(port, self._ready, self._stop, sender))
        self._process.start()
        sender.close()

    async def started(self) -> None:
        """Once the probe has had its first answer (the process takes a moment to start)."""
        await asyncio.to_thread(self._ready.wait, 60)

    async def stop(self) -> tuple[list[float], int]:
        self._stop.set()
        latencies, failures = await asyncio.to_thread(self._results.recv)
        await asyncio.to_thread(self._process.join, 10)
        return latencies, failures


@dataclass
class Phase:
    """One attack: what was sent, what was lost, and how the sidecar and the probe fared."""

    name: str
    sent: int = 0
    lost: int = 0
    expected: str = ""
    outcomes: dict[str, int] = field(default_factory=dict)
    probe_requests: int = 0
    probe_failures: int = 0
    probe_worst_ms: float = 0.0
    probe_p99_ms: float = 0.0
    worst_loop_lag_ms: float = 0.0
    worst_busy_lag_ms: float = 0.0
    loop_lag_over_10ms: int = 0
    peak_rss_kib: int = 0
    seconds: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)

    def count(self, outcome: str, ok: bool) -> None:
        self.sent += 1
        self.lost += not ok
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


@dataclass
class Child:
    """The sidecar's process."""

    process: asyncio.subprocess.Process
    port: int
    access_log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stats(self, reset: bool = False, close_pools: bool = False) -> dict[str, Any]:
        query = "&".join(k for k, on in (("reset=1", reset), ("close_pools=1", close_pools)) if on)
        async with (
            aiohttp.ClientSession() as http,
            http.get(self.url + "/drill/stats?" + query) as response,
        ):
            result: dict[str, Any] = await response.json()
            return result

    async def settle(self, timeout: float = 30.0) -> dict[str, Any]:
        """The stats once only the stats request's own connection is open (upstream pools closed)."""
        deadline = time.monotonic() + timeout
        stats = await self.stats(close_pools=True)
        while stats["connections"] > 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            stats = await self.stats(close_pools=True)
        return stats


@asynccontextmanager
async def sidecar_process(yml: Path, access_log: Path) -> AsyncIterator[Child]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.drills.hostile_sidecar", str(yml), str(access_log),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert process.stdout is not None and process.stdin is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        if not line.startswith(b"port "):
            raise RuntimeError(f"the drill's sidecar did not start: {line!r}")
        yield Child(process, int(line.split()[1]), access_log)
    finally:
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            process.kill()
            await process.wait()


@asynccontextmanager
async def phase(child: Child, name: str) -> AsyncIterator[Phase]:
    """Runs the probe and the sidecar's measures around one attack."""
    record = Phase(name)
    await child.stats(reset=True)
    probe = Probe(child.port)
    await probe.started()
    await asyncio.sleep(0.2)  # a few probe answers before the attack
    started = time.monotonic()
    try:
        yield record
    finally:
        record.seconds = round(time.monotonic() - started, 2)
        latencies, failures = await probe.stop()
        stats = await child.stats(reset=True)
        ordered = sorted(latencies)
        record.probe_requests, record.probe_failures = len(latencies), failures
        record.probe_worst_ms = round(ordered[-1] * 1000.0, 1) if ordered else 0.0
        record.probe_p99_ms = round(ordered[int(0.99 * (len(ordered) - 1))] * 1000.0, 1) if ordered else 0.0
        record.worst_loop_lag_ms = stats["worst_lag_ms"]
        record.worst_busy_lag_ms = stats["worst_busy_lag_ms"]
        record.loop_lag_over_10ms = stats["lag_over_10ms"]
        record.peak_rss_kib = stats["peak_rss_kib"]


def report_of(
    name: str, phases: list[Phase], before: dict[str, Any], after: dict[str, Any]
) -> dict[str, Any]:
    return {
        "drill": name,
        "phases": [asdict(p) for p in phases],
        "lost": sum(p.lost for p in phases),
        "probe_worst_ms": max((p.probe_worst_ms for p in phases), default=0.0),
        "probe_failures": sum(p.probe_failures for p in phases),
        "worst_loop_lag_ms": max((p.worst_loop_lag_ms for p in phases), default=0.0),
        "worst_busy_lag_ms": max((p.worst_busy_lag_ms for p in phases), default=0.0),
        "peak_rss_kib": max((p.peak_rss_kib for p in phases), default=0),
        "before": {k: before[k] for k in ("rss_kib", "fds", "tasks", "connections")},
        "after": {k: after[k] for k in ("rss_kib", "fds", "tasks", "connections")},
    }


def summary(report: dict[str, Any]) -> str:
    rows = [
        f"{p['name']:<22} sent {p['sent']:>6}  lost {p['lost']:>3}  probe worst {p['probe_worst_ms']:>7.1f} ms"
        f"  loop lag {p['worst_loop_lag_ms']:>6.1f} ms (busy {p['worst_busy_lag_ms']:>5.1f})  peak RSS {p['peak_rss_kib'] // 1024:>4} MiB  {p['seconds']:>6.1f} s"
        for p in report["phases"]
    ]
    before, after = report["before"], report["after"]
    rows.append(
        f"lost {report['lost']}, probe worst {report['probe_worst_ms']} ms, loop lag {report['worst_loop_lag_ms']} ms "
        f"(busy {report['worst_busy_lag_ms']} ms); "
        f"fds {before['fds']} -> {after['fds']}, tasks {before['tasks']} -> {after['tasks']}, "
        f"RSS {before['rss_kib'] // 1024} -> {after['rss_kib'] // 1024} MiB (peak {report['peak_rss_kib'] // 1024})"
    )
    return "\n".join(rows)
