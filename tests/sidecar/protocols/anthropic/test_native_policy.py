"""The agent's policy (`astra_sidecar.sidecar.policy.agent`) on Anthropic bodies, through `ACCESS`, end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from astra_sidecar.sidecar.policy.agent import AgentPolicy
from astra_sidecar.sidecar.protocols.anthropic.policy_access import ACCESS
from tests.sidecar.harness import compile_yaml
from tests.sidecar.protocols.anthropic.helpers import (
    USER,
    WEATHER,
)

NATIVE_YML = """
    version: 1
    agents:
      - id: cached
        systemPrompt: "Agent rules."
        promptCache: {systemPrompt: true, tools: true}
        model: {provider: claude, modelId: claude-x, temperature: 0.5}
    """


def _native_agent(tmp_path: Path) -> tuple[AgentPolicy, Any]:
    table = compile_yaml(tmp_path, NATIVE_YML)
    agent = table.agents["cached"]
    return AgentPolicy(agent), table.clusters[agent.primary]


def test_native_policy_marks_the_cache_within_anthropics_limit(tmp_path: Path) -> None:
    policy, cluster = _native_agent(tmp_path)
    body = {"messages": USER, "tools": [WEATHER], "temperature": 1.7}
    prepared = policy.prepare(body, ACCESS)
    assert prepared.body["max_tokens"] == 4096
    sent = policy.for_cluster(prepared, cluster, ACCESS)
    assert sent["system"] == [
        {"type": "text", "text": "Agent rules.", "cache_control": {"type": "ephemeral"}}
    ]
    assert sent["tools"] == [{**WEATHER, "cache_control": {"type": "ephemeral"}}]
    assert (sent["model"], sent["temperature"]) == ("claude-x", 1.0)

    marked = {"type": "text", "text": "m", "cache_control": {"type": "ephemeral"}}
    full = {"messages": [{"role": "user", "content": [marked] * 4}], "tools": [WEATHER], "system": "Caller."}
    sent = policy.for_cluster(policy.prepare(full, ACCESS), cluster, ACCESS)
    assert sent["system"] == [{"type": "text", "text": "Agent rules."}, {"type": "text", "text": "Caller."}]
    assert sent["tools"] == [WEATHER]


def test_native_default_temperature_yields_to_top_p_and_thinking(tmp_path: Path) -> None:
    policy, _ = _native_agent(tmp_path)
    assert policy.prepare({"messages": USER}, ACCESS).body["temperature"] == 0.5
    assert "temperature" not in policy.prepare({"messages": USER, "top_p": 0.9}, ACCESS).body
    thinking = {"messages": USER, "thinking": {"type": "enabled", "budget_tokens": 1024}}
    assert "temperature" not in policy.prepare(thinking, ACCESS).body
