"""The agent's policy, applied to every request before it leaves the sidecar, in the caller's own
API: each protocol supplies the small accessors (`astra_sidecar.sidecar.protocols.codec.PolicyAccess`) that read
and change its bodies, and the steps below are written once.

Per request (whatever cluster serves it):
- request tools are filtered by the agent's allow/deny lists; removed names are reported, and
  forcing a removed tool is a 400 `tool_not_allowed` (tool calls in the answers are checked too:
  `astra_sidecar.sidecar.policy.tools`);
- the temperature defaults to the agent's when the caller sent none (and chose no sampling control
  that excludes it);
- the output cap is clamped to `maxOutputTokens`, and set to it (or to the API's required default)
  when the caller sent none.

Per attempt (the cluster may be a fallback on another provider):
- the model becomes the cluster's modelId;
- the agent's reasoning default (`model.reasoning`) is written when the request asks for none
  (`astra_sidecar.sidecar.policy.reasoning_defaults`), fitted to that model;
- the rendered system prompt (sandboxed Jinja2) goes first, with the agent's prompt-cache marks
  where the API has them;
- the temperature is clamped to the provider's range, and the number of answers checked against
  what it supports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from astra_sidecar.compiler.table import Agent, Cluster
from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.policy.tools import ToolGuard
from astra_sidecar.sidecar.protocols.base import Body
from astra_sidecar.sidecar.protocols.codec import PolicyAccess

if TYPE_CHECKING:
    import jinja2

_TIME_VARIABLES = frozenset({"date", "now"})


@dataclass(slots=True)  # built per request: a frozen one costs 4x to build
class Prepared:
    """A body after the per-request policy, and the request tools it removed."""

    body: Body
    removed_tools: tuple[str, ...]


class AgentPolicy:
    """The compiled policy of one agent (its template parsed once, at table load)."""

    __slots__ = ("_context", "_prompt_cache", "_template", "_time_dependent", "agent", "tool_guard")

    def __init__(self, agent: Agent, env: jinja2.Environment | None = None) -> None:
        self.agent = agent
        #: The guard on answers' tool calls; None when the agent refuses no tool (nothing to check).
        self.tool_guard = ToolGuard(agent.id, agent.tools) if agent.tools.restrictive else None
        self._template: jinja2.Template | None = None
        self._time_dependent = False
        self._prompt_cache: dict[str, str] = {}
        if agent.system_prompt is not None:
            # Jinja2 is loaded by the first agent with a system prompt: a table without one never needs it.
            from jinja2 import meta

            from astra_sidecar.compiler.table.prompts import make_environment, render_context

            self._context = render_context
            env = env or make_environment()
            self._template = env.from_string(agent.system_prompt)
            names = meta.find_undeclared_variables(env.parse(agent.system_prompt))
            self._time_dependent = bool(names & _TIME_VARIABLES)

    def prepare(self, body: Body, access: PolicyAccess) -> Prepared:
        body = dict(body)
        agent = self.agent
        removed = access.remove_tools(body, self._refuses) if agent.tools.restrictive else ()
        if access.temperature(body) is None and agent.temperature is not None and not access.sampling_chosen(body):
            access.set_temperature(body, agent.temperature)
        self._cap_output(body, access)
        return Prepared(body=body, removed_tools=removed)

    def for_cluster(
        self, prepared: Prepared, cluster: Cluster, access: PolicyAccess, now: datetime | None = None
    ) -> Body:
        body = dict(prepared.body)
        access.set_model(body, cluster.model_id)
        access.apply_reasoning_default(body, self.agent, cluster.model_id)
        access.add_system_prompt(body, self.system_prompt(cluster, now), self.agent.prompt_cache)
        temperature = access.temperature(body)
        if temperature is not None and temperature > cluster.rules.temperature_max:
            access.set_temperature(body, cluster.rules.temperature_max)
        count, param = access.choices(body)
        limit = cluster.rules.max_choices
        if limit is not None and count is not None and count > limit:
            name = param.rsplit(".", 1)[-1]
            raise ClientError(400, f"'{name}' must be at most {limit} for this agent's provider", param=param)
        return body

    def system_prompt(self, cluster: Cluster, now: datetime | None = None) -> str | None:
        if self._template is None:
            return None
        if not self._time_dependent and cluster.key in self._prompt_cache:
            return self._prompt_cache[cluster.key]
        context = self._context(self.agent, cluster, now or datetime.now(UTC))
        text = self._template.render(context)
        if not self._time_dependent:
            self._prompt_cache[cluster.key] = text
        return text

    def _refuses(self, name: str) -> bool:
        return not self.agent.tools.permits(name)

    def _cap_output(self, body: Body, access: PolicyAccess) -> None:
        cap = self.agent.max_output_tokens
        current = access.output_cap(body)
        if current is None:
            value = cap or access.default_output_cap
            if value is not None:
                access.set_output_cap(body, value)
        elif cap is not None and current > cap:
            access.set_output_cap(body, cap)
