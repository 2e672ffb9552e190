"""The fault drill's setup (see `tests.drills.drill`): its configuration, the four agents and
their chaos upstreams, the astra.yml they compile from, and the memory bounds it holds the
process to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tests.fakes.chaos_upstream import FLAKY, HEALTHY, STORM

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
