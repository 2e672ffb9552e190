"""systemPrompt rendering: the sandboxed Jinja2 environment and the variables of one attempt.

The sidecar renders an agent's template per attempt, so `model` names the cluster actually
serving that attempt (a fallback sees its own provider and model). The compiler checks templates
in the same environment (`astra_sidecar.compiler.prompts`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from astra_sidecar.compiler.table.model import Agent, Cluster


def make_environment() -> SandboxedEnvironment:
    """The sandbox every systemPrompt is compiled and rendered in: undefined names fail loudly."""
    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def render_context(agent: Agent, cluster: Cluster, now: datetime) -> dict[str, Any]:
    """The template variables for one attempt of `agent` on `cluster` at `now` (naive means UTC)."""
    utc = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    return {
        "agent": {"id": agent.id, "displayName": agent.display_name, "tier": agent.tier},
        "model": {"provider": cluster.provider, "modelId": cluster.model_id},
        "vars": dict(agent.prompt_vars),
        "date": utc.strftime("%Y-%m-%d"),
        "now": utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
