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
import contextlib
import gc
import itertools
import json
import logging
import os
import random
import sys
import tempfile
import time
import tracemalloc
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp.test_utils import TestServer
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from prometheus_client.parser import text_string_to_metric_families

from compiler.loader import load_routing_table
from sidecar.app import create_app
from sidecar.app_keys import STATE
from sidecar.clock import MonotonicClock
from tests.fakes.chaos_upstream import FLAKY, HEALTHY, STORM, ChaosUpstream

#: Keys for the providers the drill's agents use (values are never checked by the fakes).
ENV = {
    "OPENAI_API_KEY": "sk-drill-openai",
    "GROQ_API_KEY": "gsk-drill-groq",
    "MISTRAL_API_KEY": "drill-mistral",
    "GROK_API_KEY": "xai-drill",
    "CEREBRAS_API_KEY": "csk-drill",
    "OPENROUTER_API_KEY": "sk-or-drill",
    "VLLM_API_KEY": "drill-vllm",
}

#: Memory may grow this much from the first sample (taken after the first batch, with every
#: pool, cache and metric child already created) to the last, each taken with the load drained
#: and after `gc.collect()`.
#: - gc-tracked objects: what stays between requests is connections, and how many idle
#:   keep-alive connections the sidecar's upstream pools and the upstreams hold at a sample
#:   varies (about 60 objects each; up to `concurrency` of them): measured ±500 between samples.
#:   The bound, 3,000, is under what a leak of one object per request adds over the long run's
#:   9,000 measured requests; and a leaked request keeps dozens (its task, response, context).
#: - RSS: a leak of 1 KiB per request is 9 MiB over those 9,000 requests; the allocator's own
#:   drift (arenas not returned to the OS) measured < 2 MiB over 10,000 requests.
MEMORY_BOUNDS = {"gc_objects": 3_000, "rss_kib": 8 * 1024}

_STATUS_ALLOWED = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class DrillConfig:
    requests: int = 1500
    concurrency: int = 48
    seed: int = 1
    stream_share: float = 0.5
    #: Requests the client abandons at a random moment after the main phase (leak check).
    abandon: int = 50
    attempt_ms: int = 200
    request_timeout_ms: int = 1500
    #: The three-step agent's own deadline: shorter than its plan can take, so it is often hit.
    short_timeout_ms: int = 800
    stream_idle_ms: int = 300
    connect_ms: int = 500
    max_retries: int = 2
    base_delay_ms: int = 20
    max_delay_ms: int = 100
    jitter: float = 0.5
    max_retry_after_ms: int = 100
    failure_threshold: int = 4
    window_ms: int = 1000
    cooldown_ms: int = 250
    success_threshold: int = 2
    #: Client-observed latency may exceed the deadline by this much (event-loop scheduling).
    slack_ms: int = 250
    #: After the deadline plus this, the client calls the request hung.
    hang_s: float = 5.0
    sample_every: int = 1000
    tracemalloc: bool = False


@dataclass(frozen=True)
class AgentSpec:
    id: str
    plan: tuple[tuple[str, str], ...]  # (provider, upstream name) per plan entry
    #: A breaker that (almost) never opens, so retries and deep plans run to their limits.
    patient: bool = False
    #: Runs on `DrillConfig.short_timeout_ms` instead of `request_timeout_ms`.
    short_deadline: bool = False


#: Four agents: chaos primaries, healthy, flaky and chaos fallbacks, plans of length 1 to 3. The
#: first two have the drill's tight breakers, which open and close many times a second under
#: this load; the patient two retry and fall back to the policy's limits and into the deadline.
AGENTS = (
    AgentSpec("storm-to-healthy", (("openai", "storm-a"), ("groq", "healthy-a"))),
    AgentSpec("storm-to-flaky", (("mistral", "storm-b"), ("grok", "flaky"))),
    AgentSpec("storm-alone", (("cerebras", "storm-c"),), patient=True),
    AgentSpec(
        "three-step",
        (("openrouter", "storm-d"), ("vllm", "storm-e"), ("ollama", "healthy-b")),
        patient=True,
        short_deadline=True,
    ),
)
_PATIENT_BREAKER = "{failureThreshold: 1000000, windowMs: 1000, cooldownMs: 1000, successThreshold: 1}"
UPSTREAM_MIXES: Mapping[str, Mapping[str, float]] = {
    "storm-a": STORM,
    "storm-b": STORM,
    "storm-c": STORM,
    "storm-d": STORM,
    "storm-e": STORM,
    "flaky": FLAKY,
    "healthy-a": HEALTHY,
    "healthy-b": HEALTHY,
}


def astra_yml(config: DrillConfig, urls: Mapping[str, str]) -> str:
    c = config
    lines = [
        "version: 1",
        "settings:",
        f"  requestTimeoutMs: {c.request_timeout_ms}",
        f"  retry: {{maxRetries: {c.max_retries}, baseDelayMs: {c.base_delay_ms}, "
        f"maxDelayMs: {c.max_delay_ms}, jitter: {c.jitter}, maxRetryAfterMs: {c.max_retry_after_ms}}}",
        f"  circuitBreaker: {{failureThreshold: {c.failure_threshold}, windowMs: {c.window_ms}, "
        f"cooldownMs: {c.cooldown_ms}, successThreshold: {c.success_threshold}}}",
        f"  timeouts: {{connectMs: {c.connect_ms}, attemptMs: {c.attempt_ms}, streamIdleMs: {c.stream_idle_ms}}}",
        "agents:",
    ]
    for agent in AGENTS:
        entries = [
            f"{{provider: {provider}, modelId: {upstream}-model, endpoint: '{urls[upstream]}'}}"
            for provider, upstream in agent.plan
        ]
        lines.append(f"  {agent.id}:")
        fallback = f", fallback: [{', '.join(entries[1:])}]" if entries[1:] else ""
        lines.append(f"    model: {entries[0][:-1]}{fallback}}}")
        if agent.patient:
            lines.append(f"    circuitBreaker: {_PATIENT_BREAKER}")
        if agent.short_deadline:
            lines.append(f"    requestTimeoutMs: {c.short_timeout_ms}")
    return "\n".join(lines) + "\n"


# --- measuring the process ----------------------------------------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@dataclass
class MemorySample:
    requests: int
    rss_kib: int
    gc_objects: int
    fds: int
    traced_kib: int | None


def sample_memory(requests: int) -> MemorySample:
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] // 1024 if tracemalloc.is_tracing() else None
    return MemorySample(requests, rss_kib(), len(gc.get_objects()), open_fds(), traced)


class _ErrorLogCounter(logging.Handler):
    """Counts ERROR records from the sidecar, aiohttp and asyncio (an escaped exception, a task
    exception never retrieved…): the drill expects none."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.first) < 5:
            error = f" ({record.exc_info[0].__name__}: {record.exc_info[1]})" if record.exc_info else ""
            self.first.append(f"{record.name}: {record.getMessage()}{error}")
            if os.environ.get("ASTRA_DRILL_TRACEBACKS"):
                logging.Formatter().format(record)
                print(record.exc_text, file=sys.stderr)


@contextlib.contextmanager
def counting_error_logs() -> Iterator[_ErrorLogCounter]:
    """Counts ERROR records of those loggers (and keeps their WARNINGs, such as each breaker
    transition, out of the way) while the drill runs."""
    counter = _ErrorLogCounter()
    loggers = [logging.getLogger(name) for name in ("astra", "aiohttp", "asyncio")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(counter)
        logger.setLevel(logging.ERROR)
    try:
        yield counter
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(counter)
            logger.setLevel(level)


# --- checking one answer ------------------------------------------------------------------------


class Problem(Exception):
    """One answer that breaks a rule (the message says which)."""


def _error_object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("error"), dict):
        raise Problem(f"not an OpenAI error body: {str(data)[:200]}")
    error: dict[str, Any] = data["error"]
    if not isinstance(error.get("message"), str) or not isinstance(error.get("type"), str):
        raise Problem(f"error body without message/type: {error}")
    if set(error) != {"message", "type", "param", "code"}:
        raise Problem(f"error body keys {sorted(error)}")
    if error.get("code") == "internal_error" or "Traceback" in error["message"]:
        raise Problem(f"the sidecar's own 500: {error}")
    return error


def check_plain(status: int, content_type: str, body: bytes) -> str:
    """Outcome label of a plain answer, or Problem."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(f"status {status}: body is not JSON: {body[:200]!r}") from exc
    if not content_type.startswith("application/json"):
        raise Problem(f"status {status}: content type {content_type}")
    if status == 200:
        completion = ChatCompletion.model_validate(data)
        if completion.choices[0].message.content != "chaos says hello":
            raise Problem(f"unexpected completion {data}")
        return "ok"
    if status not in _STATUS_ALLOWED:
        raise Problem(f"unexpected status {status}: {data}")
    error = _error_object(data)
    return f"error {status} {error.get('code')}"


def check_stream(body: bytes) -> str:
    """Outcome label of a 200 SSE answer, or Problem: valid chunks, then `[DONE]` or one error."""
    if not body.endswith(b"\n\n"):
        raise Problem(f"stream does not end with a whole event: {body[-120:]!r}")
    events = body[:-2].split(b"\n\n")
    finished = False
    for index, event in enumerate(events):
        if not event.startswith(b"data: ") or b"\n" in event:
            raise Problem(f"event {index} is not one data line: {event[:200]!r}")
        payload = event[6:]
        last = index == len(events) - 1
        if payload == b"[DONE]":
            if not last:
                raise Problem("[DONE] before the end of the stream")
            if not finished:
                raise Problem("[DONE] without a finish_reason before it")
            return "ok stream"
        data = orjson.loads(payload)
        if "error" in data:
            if not last:
                raise Problem("an error event that is not the last event")
            error = _error_object(data)
            return f"stream error {error.get('code')}"
        chunk = ChatCompletionChunk.model_validate(data)
        finished = finished or any(choice.finish_reason for choice in chunk.choices)
    raise Problem(f"stream ended without [DONE] or an error event: {body[-200:]!r}")


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What the answers said, kept as counters (nothing per request) so memory stays flat."""

    sent: int = 0
    answered: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    attempts: int = 0
    attempts_max: dict[str, int] = field(default_factory=dict)
    attempt_histogram: Counter[int] = field(default_factory=Counter)
    served_by: Counter[str] = field(default_factory=Counter)
    latencies: array[float] = field(default_factory=lambda: array("d"))
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < 20:
            self.problems.append(text)


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
        for _ in range(20):
            await asyncio.sleep(0.05)
            gc.collect()
            if open_fds() <= fds_before and len(asyncio.all_tasks()) <= tasks_before:
                break
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
        errors: _ErrorLogCounter,
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
                "p50": _ms(latencies, 0.5),
                "p99": _ms(latencies, 0.99),
                "max": _ms(latencies, 1.0),
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
                "illegal": _illegal_transitions(seq),
                "early_half_open": _early_half_opens(seq, config.cooldown_ms / 1000.0),
                "final_recorded": seq[-1][2] if seq else "closed",
            }
        return out


def _illegal_transitions(seq: list[Transition]) -> int:
    legal = {("closed", "open"), ("open", "half_open"), ("half_open", "closed"), ("half_open", "open")}
    state, bad = "closed", 0
    for _, _, new in seq:
        bad += (state, new) not in legal
        state = new
    return bad


def _early_half_opens(seq: list[Transition], cooldown_s: float) -> int:
    """Half-opens sooner than the cooldown after their open (2 ms for the listener's own time)."""
    early = 0
    for (opened, _, before), (half_opened, _, after) in itertools.pairwise(seq):
        if before == "open" and after == "half_open" and half_opened - opened < cooldown_s - 0.002:
            early += 1
    return early


def _ms(sorted_values: list[float], q: float) -> float:
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
