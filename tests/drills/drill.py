"""The fault drill: many requests through a real sidecar whose upstreams fail in every way.

Everything runs in one process on loopback sockets: chaos upstreams (`tests.fakes.chaos_upstream`)
behind four agents with fallbacks, the sidecar app on aiohttp's server (with handler
cancellation, as `astra serve` runs it) and its real clock, and a bounded-concurrency aiohttp
client sending OpenAI chat requests, plain and streamed. Then it proves, with counts:

- **one answer each**: every request gets exactly one well-formed answer or error — a
  `chat.completion`, an OpenAI error body, or an SSE stream of valid chunks that ends in
  ``[DONE]`` or in one error event — and nothing else: no transport failure, no hang (the client
  gives up `hang_s` after the deadline), no 500 of the sidecar's own, no traceback anywhere;
- **attempts within policy**: `x-astra-attempts` ≤ (1 + maxRetries) x the agent's plan length, and
  the upstreams saw exactly as many requests as the answers report attempts;
- **breakers as configured**: every transition recorded is legal (closed → open → half-open →
  closed | open), no half-open comes sooner than `cooldownMs` after its open, and the counts
  agree with `astra_breaker_transitions_total` and `astra_breaker_state` on /metrics;
- **deadlines hold**: every client-observed latency ≤ `requestTimeoutMs` + `slack_ms`;
- **nothing left behind**: after a last phase of requests the client abandons mid-way, and
  shutdown, the process has the file descriptors and asyncio tasks it had before; memory
  (RSS and gc-tracked objects, sampled after every `sample_every` requests with the load
  drained) stays flat after the first sample (see `MEMORY_BOUNDS`).

`python -m tests.drills.drill --requests 10000 --seed 1 --report out/drill.json` (or
`scripts/drill …`) runs the long version; `tests/drills/test_drill.py` a CI-sized one.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from astra_sidecar.compiler.loader import load_routing_table
from astra_sidecar.sidecar.app import create_app
from astra_sidecar.sidecar.app_keys import STATE
from astra_sidecar.sidecar.clock import MonotonicClock
from tests.drills.drill_answers import Problem, Tally, check_plain, check_stream
from tests.drills.drill_process import (
    ErrorLogCounter,
    MemorySample,
    counting_error_logs,
    open_fds,
    sample_memory,
)
from tests.drills.drill_report import (
    Metrics,
    Snapshot,
    Transition,
    early_half_opens,
    illegal_transitions,
    parse_metrics,
    percentile_ms,
    summary,
    violations,
)
from tests.drills.drill_setup import (
    AGENTS,
    ENV,
    MEMORY_BOUNDS,
    UPSTREAM_MIXES,
    AgentSpec,
    DrillConfig,
    astra_yml,
)
from tests.fakes.chaos_upstream import ChaosUpstream
from tests.processes import eventually

# --- the run ------------------------------------------------------------------------------------


class Drill:
    def __init__(self, config: DrillConfig) -> None:
        self.config = config
        self.tally = Tally()
        self.transitions: list[Transition] = []
        self.upstreams: dict[str, ChaosUpstream] = {}
        self.memory: list[MemorySample] = []
        self._plan_rng = random.Random(config.seed)
        self._next = 0
        self._limit = {a.id: (1 + config.max_retries) * len(a.plan) for a in AGENTS}
        self._deadline_ms = {
            a.id: config.short_timeout_ms if a.short_deadline else config.request_timeout_ms for a in AGENTS
        }

    # one request ------------------------------------------------------------------------------

    async def _one(self, session: aiohttp.ClientSession, url: str, agent: AgentSpec, stream: bool) -> None:
        tally, config = self.tally, self.config
        body = {"model": agent.id, "messages": [{"role": "user", "content": "hello"}], "stream": stream}
        if stream and self._plan_rng.random() < 0.5:
            body["stream_options"] = {"include_usage": True}
        tally.sent += 1
        started = time.monotonic()
        try:
            async with asyncio.timeout(config.request_timeout_ms / 1000.0 + config.hang_s):
                async with session.post(url, json=body) as response:
                    raw = await response.read()
                    status, headers = response.status, response.headers
        except TimeoutError:
            tally.problem(f"{agent.id} stream={stream}: no answer (hung)")
            return
        except aiohttp.ClientError as exc:
            tally.problem(f"{agent.id} stream={stream}: answer lost ({type(exc).__name__}: {exc})")
            return
        latency = time.monotonic() - started
        tally.latencies.append(latency)
        tally.answered += 1
        label = f"{agent.id} stream={stream} status={status}"
        try:
            if stream and status == 200:
                if not headers.get("Content-Type", "").startswith("text/event-stream"):
                    raise Problem(f"a 200 stream with content type {headers.get('Content-Type')}")
                outcome = check_stream(raw)
            else:
                outcome = check_plain(status, headers.get("Content-Type", ""), raw)
            attempts = int(headers["x-astra-attempts"])
        except (Problem, ValueError, KeyError) as exc:
            tally.problem(f"{label}: {type(exc).__name__}: {exc}")
            return
        tally.outcomes[outcome] += 1
        tally.attempts += attempts
        tally.attempt_histogram[attempts] += 1
        tally.attempts_max[agent.id] = max(tally.attempts_max.get(agent.id, 0), attempts)
        tally.served_by[headers.get("x-astra-provider", "none")] += 1
        if attempts > self._limit[agent.id]:
            tally.problem(f"{label}: {attempts} attempts, policy allows {self._limit[agent.id]}")
        if latency * 1000.0 > self._deadline_ms[agent.id] + config.slack_ms:
            tally.problem(f"{label}: answered after {latency * 1000:.0f} ms ({outcome})")

    def _pick(self) -> tuple[AgentSpec, bool]:
        rng = self._plan_rng
        return AGENTS[rng.randrange(len(AGENTS))], rng.random() < self.config.stream_share

    async def _batch(self, url: str, count: int) -> None:
        """`count` requests from `concurrency` workers; a client session (connection pool) of its
        own, closed at the end, so memory samples between batches do not count client
        connections that happen to be idle in the pool."""
        end = self._next + count

        async def worker(session: aiohttp.ClientSession) -> None:
            while self._next < end:
                self._next += 1
                agent, stream = self._pick()
                await self._one(session, url, agent, stream)

        connector = aiohttp.TCPConnector(limit=self.config.concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(*(worker(session) for _ in range(self.config.concurrency)))

    async def _abandoned(self, session: aiohttp.ClientSession, url: str) -> int:
        """Requests the client gives up on at a random moment (the sidecar must clean up)."""
        rng = random.Random(self.config.seed + 1)
        cut = 0

        async def one() -> None:
            nonlocal cut
            agent, stream = self._pick()
            body = {"model": agent.id, "messages": [{"role": "user", "content": "bye"}], "stream": stream}
            try:
                # Most answers take ~25 ms: give up within that often, and sometimes later.
                longest = 0.05 if rng.random() < 0.7 else self.config.request_timeout_ms / 1000.0
                async with asyncio.timeout(rng.uniform(0.0, longest)):
                    async with session.post(url, json=body) as response:
                        await response.read()
            except TimeoutError:
                cut += 1
            except aiohttp.ClientError as exc:  # an answer the client waited for, lost
                self.tally.problem(f"abandon phase, {agent.id} stream={stream}: {type(exc).__name__}: {exc}")

        await asyncio.gather(*(one() for _ in range(self.config.abandon)))
        return cut

    # the whole drill --------------------------------------------------------------------------

    async def run(self, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        config = self.config
        if config.tracemalloc:
            tracemalloc.start()
        # uvloop (libuv) reserves one spare descriptor (/dev/null) for the whole loop at its first
        # listen, to shed connections when out of descriptors: take it before the baseline.
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        server.close()
        await server.wait_closed()
        before = sample_memory(0)
        fds_before, tasks_before = before.fds, len(asyncio.all_tasks())
        started = time.monotonic()
        with counting_error_logs() as errors, tempfile.TemporaryDirectory() as tmp:
            for index, (name, mix) in enumerate(UPSTREAM_MIXES.items()):
                upstream = ChaosUpstream(seed=config.seed * 100 + index, mix=mix, name=name)
                self.upstreams[name] = await upstream.start()
            path = Path(tmp) / "astra.yml"
            path.write_text(astra_yml(config, {n: u.url for n, u in self.upstreams.items()}))
            table = load_routing_table(str(path))
            app = create_app(table, env=ENV, clock=MonotonicClock(), rng=random.Random(config.seed))
            self._record_transitions(app[STATE].shared.metrics)
            server = TestServer(app)
            await server.start_server(access_log=None)
            base = str(server.make_url("")).rstrip("/")
            url = base + "/v1/chat/completions"
            session = aiohttp.ClientSession()
            try:
                done = 0
                while done < config.requests:
                    count = min(config.sample_every, config.requests - done)
                    await self._batch(url, count)
                    done += count
                    self.memory.append(sample_memory(done))
                    if progress:
                        progress(self._progress_line(done, time.monotonic() - started))
                main_s = time.monotonic() - started
                async with session.get(base + "/metrics") as response:
                    main = self._snapshot(await response.text(), app[STATE].in_flight)
                abandoned = await self._abandoned(session, url)
            finally:
                await session.close()
                await server.close()
                for upstream in self.upstreams.values():
                    await upstream.close()
        # Transports close on the loop's next turns after the servers and the client are gone.

        def settled() -> bool:
            gc.collect()
            return open_fds() <= fds_before and len(asyncio.all_tasks()) <= tasks_before

        await eventually(settled, timeout=1.0, interval=0.05)
        fds_after, tasks_after = open_fds(), len(asyncio.all_tasks())
        final = sample_memory(config.requests + config.abandon)
        if config.tracemalloc:
            tracemalloc.stop()
        return self._report(
            main=main,
            main_s=main_s,
            errors=errors,
            fds=(fds_before, fds_after),
            tasks=(tasks_before, tasks_after),
            abandoned=abandoned,
            memory=(before, final),
        )

    def _snapshot(self, metrics_text: str, in_flight: int) -> Snapshot:
        return Snapshot(
            metrics=parse_metrics(metrics_text),
            in_flight=in_flight,
            transitions=list(self.transitions),
            upstreams={
                name: {
                    "requests": u.requests,
                    "streamed": u.streamed,
                    "injected": dict(sorted(u.injected.items())),
                }
                for name, u in self.upstreams.items()
            },
        )

    def _record_transitions(self, metrics: Any) -> None:
        changed = metrics.breaker_changed

        def recording(cluster: str, provider: str, new_state: str) -> None:
            self.transitions.append((time.monotonic(), cluster, new_state))
            changed(cluster, provider, new_state)

        metrics.breaker_changed = recording

    def _progress_line(self, done: int, elapsed: float) -> str:
        last = self.memory[-1]
        return (
            f"{done:>6} requests  {elapsed:6.1f} s  rss {last.rss_kib / 1024:6.1f} MiB  "
            f"objects {last.gc_objects}  problems {self.tally.problem_count}"
        )

    # the report -------------------------------------------------------------------------------

    def _report(
        self,
        *,
        main: Snapshot,
        main_s: float,
        errors: ErrorLogCounter,
        fds: tuple[int, int],
        tasks: tuple[int, int],
        abandoned: int,
        memory: tuple[MemorySample, MemorySample],
    ) -> dict[str, Any]:
        before, final = memory
        tally, config, metrics = self.tally, self.config, main.metrics
        faults: Counter[str] = Counter()
        for upstream in main.upstreams.values():
            faults.update({k: n for k, n in upstream["injected"].items() if k != "ok"})
        latencies = sorted(tally.latencies)
        report: dict[str, Any] = {
            "config": asdict(config),
            "seconds": round(main_s, 1),
            "requests": {
                "driven": tally.sent,
                "answered": tally.answered,
                "lost": tally.sent - tally.answered,
                "outcomes": dict(sorted(tally.outcomes.items())),
                "served_by": dict(sorted(tally.served_by.items())),
                "abandoned_by_client": abandoned,
            },
            "faults_injected": dict(sorted(faults.items())),
            "faults_injected_total": sum(faults.values()),
            "upstreams": main.upstreams,
            "attempts": {
                "sum_reported": tally.attempts,
                "upstream_requests": sum(u["requests"] for u in main.upstreams.values()),
                "max_by_agent": tally.attempts_max,
                "limit_by_agent": self._limit,
                "histogram": dict(sorted(tally.attempt_histogram.items())),
                "metrics_by_outcome": metrics.sum_by("astra_upstream_attempts_total", "outcome"),
                "retries_metric": metrics.total("astra_retries_total"),
                "fallbacks_metric": metrics.total("astra_fallbacks_total"),
            },
            "breakers": self._breakers(metrics, main.transitions),
            "latency_ms": {
                "deadline_by_agent": self._deadline_ms,
                "slack": config.slack_ms,
                "p50": percentile_ms(latencies, 0.5),
                "p99": percentile_ms(latencies, 0.99),
                "max": percentile_ms(latencies, 1.0),
            },
            "requests_metric": metrics.total("astra_requests_total"),
            "in_flight_after": main.in_flight,
            "resources": {
                "fds_before": fds[0],
                "fds_after": fds[1],
                "tasks_before": tasks[0],
                "tasks_after": tasks[1],
                "memory_samples": [asdict(s) for s in self.memory],
                "memory_before_start": asdict(before),
                "memory_after_shutdown": asdict(final),
                "memory_bounds": MEMORY_BOUNDS,
            },
            "error_logs": {"count": errors.count, "first": errors.first},
            "problems": {"count": tally.problem_count, "first": tally.problems},
        }
        report["violations"] = violations(report)
        return report

    def _breakers(self, metrics: Metrics, transitions: list[Transition]) -> dict[str, Any]:
        config = self.config
        by_cluster: dict[str, list[Transition]] = {}
        for t in transitions:
            by_cluster.setdefault(t[1], []).append(t)
        out: dict[str, Any] = {}
        states = {0.0: "closed", 1.0: "half_open", 2.0: "open"}
        for cluster, gauge in metrics.samples("astra_breaker_state"):
            seq = by_cluster.get(cluster["cluster"], [])
            name = cluster["cluster"]
            counted = {
                to: metrics.value("astra_breaker_transitions_total", cluster=name, to=to)
                for to in ("open", "half_open", "closed")
            }
            out[name] = {
                "transitions_metric": counted,
                "transitions_recorded": dict(Counter(t[2] for t in seq)),
                "state_metric": states.get(gauge, str(gauge)),
                "illegal": illegal_transitions(seq),
                "early_half_open": early_half_opens(seq, config.cooldown_ms / 1000.0),
                "final_recorded": seq[-1][2] if seq else "closed",
            }
        return out


async def run_drill(config: DrillConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    return await Drill(config).run(progress)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/drill", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=DrillConfig.concurrency)
    parser.add_argument("--abandon", type=int, default=None, help="client-abandoned requests (default 2%%)")
    parser.add_argument("--sample-every", type=int, default=1000)
    parser.add_argument("--tracemalloc", action="store_true", help="also sample tracemalloc (slower)")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop, as `astra serve` does")
    parser.add_argument("--report", metavar="PATH", help="write the JSON report here")
    args = parser.parse_args(argv)
    config = DrillConfig(
        requests=args.requests,
        seed=args.seed,
        concurrency=args.concurrency,
        abandon=args.abandon if args.abandon is not None else max(1, args.requests // 50),
        sample_every=args.sample_every,
        tracemalloc=args.tracemalloc,
    )
    if args.uvloop:
        import uvloop

        uvloop.install()
    report = asyncio.run(run_drill(config, progress=lambda line: print(line, file=sys.stderr)))
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    print(summary(report))
    return 1 if report["violations"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
