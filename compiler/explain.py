"""`astra explain`: one agent's resolved route, in plain words, from the frozen table."""

from __future__ import annotations

from astra_sidecar.compiler.table import Agent, Cluster, MockBehavior, RoutingTable
from astra_sidecar.compiler.table.pool import Pool
from astra_sidecar.compiler.table.retry import attempt_budget, unreachable_from, worst_delays_ms


def _credentials(cluster: Cluster) -> str:
    creds = cluster.credentials
    if creds.mode == "env":
        return f"API key from ${creds.env}" + ("" if creds.required else " (optional)")
    if creds.mode == "passthrough":
        return "the caller's own API key, passed through"
    if creds.mode == "aws":
        region = cluster.region or "from $AWS_REGION"
        return f"AWS credential chain, region {region}"
    if creds.mode == "google" and cluster.vertex is not None:
        source = cluster.vertex.credentials_file or "Application Default Credentials"
        return f"Google credentials ({source}), project {cluster.vertex.project}, location {cluster.vertex.location}"
    return "no credentials"


def _mock(mock: MockBehavior) -> str:
    parts = [f"reply {mock.reply!r}" if mock.reply is not None else "echoes the last user message"]
    if mock.status is not None and mock.fail_rate >= 1:
        parts = [f"always fails with HTTP {mock.status}"]
    elif mock.status is not None:
        parts.append(f"fails {mock.fail_rate:.0%} of requests with HTTP {mock.status}")
    if mock.retry_after_ms is not None:
        parts.append(f"Retry-After {mock.retry_after_ms} ms")
    if mock.latency_ms or mock.chunk_delay_ms:
        parts.append(f"latency {mock.latency_ms} ms, {mock.chunk_delay_ms} ms between chunks")
    if mock.cut_after_chunks is not None:
        parts.append(f"cuts streams after {mock.cut_after_chunks} chunks")
    return "answers locally: " + "; ".join(parts)


def _where(cluster: Cluster) -> str:
    if cluster.mock is not None:
        return _mock(cluster.mock)
    url = cluster.base_url or "(URL from the region at start)"
    override = f" (or ${cluster.base_url_env} when set)" if cluster.base_url_env else ""
    return f"at {url}{override}; {_credentials(cluster)}"


def _cluster_lines(number: int, cluster: Cluster) -> list[str]:
    role = "primary" if number == 0 else f"fallback {number}"
    breaker = cluster.breaker
    abilities = [name for name in ("streaming", "tools") if not getattr(cluster, name)]
    lacks = f"; no {' or '.join(abilities)}" if abilities else ""
    return [
        f"  {number + 1}. {role:<11} {cluster.provider} model {cluster.model_id} {_where(cluster)}",
        f"     {'':<11} breaker opens after {breaker.failure_threshold} failures within "
        f"{breaker.window_ms} ms, probes again after {breaker.cooldown_ms} ms"
        f"{', shared through Redis' if cluster.shared_breaker else ''}{lacks}",
    ]


def _pool_lines(table: RoutingTable, number: int, pool: Pool) -> list[str]:
    """A pool entry: its strategy, then one line per member (where it is, its weight, its breaker)."""
    first = table.clusters[pool.members[0].cluster]
    role = "primary" if number == 0 else f"fallback {number}"
    how = "by weight" if pool.strategy == "weighted" else "fewest requests in flight first"
    lines = [
        f"  {number + 1}. {role:<11} {first.provider} model {first.model_id}, a pool of "
        f"{len(pool.members)} ({pool.strategy}: {how}); a failed attempt is retried on another member"
    ]
    for member in pool.members:
        cluster = table.clusters[member.cluster]
        weight = f"weight {member.weight:g}, " if pool.strategy == "weighted" else ""
        breaker = cluster.breaker
        shared = ", shared through Redis" if cluster.shared_breaker else ""
        lines.append(
            f"     {'':<11} - {member.id}: {weight}{_where(cluster)}; own breaker "
            f"({breaker.failure_threshold} failures within {breaker.window_ms} ms{shared})"
        )
    return lines


def _retry_lines(agent: Agent) -> list[str]:
    retry, timeouts = agent.retry, agent.timeouts
    statuses = ", ".join(str(s) for s in retry.retry_on) or "no status"
    network = " and network errors" if retry.retry_network_errors else ""
    delays = ", ".join(f"{delay} ms" for delay in worst_delays_ms(retry)) or "none"
    return [
        f"Retry:    up to {retry.max_retries} {'retry' if retry.max_retries == 1 else 'retries'} per plan "
        f"entry on HTTP {statuses}{network}; "
        f"backoff {retry.base_delay_ms} ms doubling up to {retry.max_delay_ms} ms, each delay shortened "
        f"at random by up to {retry.jitter:.0%} (longest delays: {delays}); "
        f"Retry-After honoured up to {retry.max_retry_after_ms} ms",
        f"Timeouts: connect {timeouts.connect_ms} ms; {timeouts.attempt_ms} ms per try for the whole "
        f"answer (or a stream's first chunk); stream idle {timeouts.stream_idle_ms} ms; "
        f"whole request {agent.request_timeout_ms} ms",
    ]


def _budget_line(agent: Agent) -> str:
    budget = attempt_budget(agent.retry, agent.timeouts)
    total = budget.total_ms * len(agent.plan)
    line = (
        f"Budget:   worst case {budget.total_ms} ms per plan entry ({budget.tries} tries of "
        f"{budget.attempt_ms} ms + {budget.backoff_ms} ms backoff), {total} ms for the whole plan"
    )
    index = unreachable_from(len(agent.plan), budget, agent.request_timeout_ms)
    if index is not None:
        return (
            line
            + f"; fallback {index} starts after the {agent.request_timeout_ms} ms deadline and may never be reached"
        )
    if len(agent.plan) > 1:
        return line + f"; every fallback can start within the {agent.request_timeout_ms} ms deadline"
    return line


def _policy_lines(agent: Agent) -> list[str]:
    limits = [
        text
        for text, value in (
            (f"context {agent.max_context_tokens} tokens", agent.max_context_tokens),
            (f"output up to {agent.max_output_tokens} tokens", agent.max_output_tokens),
            (f"temperature {agent.temperature}", agent.temperature),
        )
        if value is not None
    ]
    allow = "all" if agent.tools.allow is None else (", ".join(agent.tools.allow) or "none")
    deny = ", ".join(agent.tools.deny) or "none"
    prompt = (
        "none" if agent.system_prompt is None else f"{len(agent.system_prompt.splitlines())}-line template"
    )
    cache = [
        name
        for name, on in (
            ("system prompt", agent.prompt_cache.system_prompt),
            ("tools", agent.prompt_cache.tools),
        )
        if on
    ]
    return [
        f"Limits:   {', '.join(limits) or 'provider defaults'}",
        f"Tools:    allowed: {allow}; denied: {deny}",
        f"Prompt:   system prompt {prompt}; prompt cache: {', '.join(cache) or 'off'}",
    ]


def explain_agent(table: RoutingTable, agent: Agent) -> str:
    """A few lines describing how the sidecar serves `agent`."""
    details = ", ".join(x for x in (agent.display_name, agent.tier and f"tier {agent.tier}") if x)
    lines = [f"Agent {agent.id}" + (f" ({details})" if details else ""), "Plan (tried in order):"]
    for number, cluster in enumerate(table.cluster_plan(agent)):
        pool = agent.pools.get(cluster.key)
        lines.extend(_cluster_lines(number, cluster) if pool is None else _pool_lines(table, number, pool))
    lines.extend(_retry_lines(agent))
    lines.append(_budget_line(agent))
    lines.extend(_policy_lines(agent))
    return "\n".join(lines) + "\n"
