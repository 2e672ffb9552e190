"""Checks of an agent's reasoning default (`model.reasoning`) against the models of its plan.

Each target written in the agent (primary and `{provider, modelId}` fallbacks) is looked up in
the reasoning table (`compiler/table/reasoning.py`), the same one the sidecar fits budgets with:

- AST230 (warning) a model without a reasoning control: the default is not sent to it;
- AST231 `budgetTokens` below the model's smallest budget (Claude 1024, Gemini 2.5 Pro 128 …);
- AST232 `budgetTokens` not below `maxOutputTokens` (the answer needs room after the thinking);
- AST233 (warning) `budgetTokens` above the model's largest budget: it is lowered;
- AST234 `effort` and `budgetTokens` disagree on whether reasoning is on;
- AST235 `temperature` with reasoning on Claude (Anthropic takes no temperature while thinking);
- AST236 (warning) `effort: none` on a model that cannot turn thinking off;
- AST237 (warning) `maxOutputTokens` too small for the model's smallest budget: it never thinks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from astra_sidecar.compiler.config import AgentConfig, Config, Target
from astra_sidecar.compiler.diagnostics import Diagnostic
from astra_sidecar.compiler.providers import PROVIDERS, canonical_provider
from astra_sidecar.compiler.table.reasoning import ReasoningLimits, effort_for_budget, limits_for
from astra_sidecar.compiler.yamlpos import Path


def _targets(agent: AgentConfig) -> Iterator[tuple[Target, ReasoningLimits]]:
    """The agent's written targets whose provider has a reasoning table entry."""
    for target in (agent.primary, *agent.fallbacks):
        if not isinstance(target, Target):
            continue
        provider = canonical_provider(target.provider)
        limits = limits_for(PROVIDERS[provider].wire, target.model_id) if provider else None
        if limits is not None:
            yield target, limits


def effective_effort(reasoning: Mapping[str, Any]) -> str | None:
    """The effort a default stands for: `effort`, else the level of `budgetTokens`."""
    effort = reasoning.get("effort")
    if isinstance(effort, str):
        return effort
    budget = reasoning.get("budgetTokens")
    return effort_for_budget(budget) if isinstance(budget, int) else None


class _AgentReasoning:
    """One agent's `model.reasoning` with the positions its diagnostics point at."""

    def __init__(self, config: Config, agent: AgentConfig, reasoning: Mapping[str, Any]) -> None:
        self.config, self.agent, self.reasoning = config, agent, reasoning
        self.path: Path = (*agent.path, "model", "reasoning")
        self.effort = effective_effort(reasoning)
        self.budget: int | None = reasoning.get("budgetTokens")
        self.output_cap: int | None = agent.model.get("maxOutputTokens")

    def at(self, path: Path, code: str, message: str) -> Diagnostic:
        return self.config.doc.diag(self.config.doc.value_pos(path), code, message)

    def own(self, key: str) -> Path:
        return (*self.path, key)

    def model_key(self, key: str) -> Path:
        return (*self.agent.path, "model", key)


def _agreement(r: _AgentReasoning) -> Iterator[Diagnostic]:
    effort = r.reasoning.get("effort")
    if effort is None or r.budget is None or (effort == "none") == (r.budget == 0):
        return
    state = "off" if effort == "none" else "on"
    message = f"budgetTokens {r.budget} contradicts effort '{effort}' (reasoning {state}): set one of them"
    yield r.at(r.own("budgetTokens"), "AST234", message)


def _budget(r: _AgentReasoning, target: Target, limits: ReasoningLimits) -> Iterator[Diagnostic]:
    budget = r.budget
    if budget is None or budget == 0 or limits.control != "budget":
        return
    where, model = r.own("budgetTokens"), target.model_id
    if budget < limits.minimum:
        message = f"budgetTokens {budget} is below {limits.minimum}, the smallest budget of '{model}'"
        yield r.at(where, "AST231", message)
    elif limits.maximum is not None and budget > limits.maximum:
        message = (
            f"budgetTokens {budget} is above {limits.maximum}, the largest budget of '{model}': it is lowered"
        )
        yield r.at(where, "AST233", message)


def _output_room(r: _AgentReasoning) -> Iterator[Diagnostic]:
    if r.budget and r.output_cap is not None and r.budget >= r.output_cap:
        message = f"budgetTokens {r.budget} must be below maxOutputTokens {r.output_cap}: no room is left for the answer"
        yield r.at(r.own("budgetTokens"), "AST232", message)


def _per_target(r: _AgentReasoning, target: Target, limits: ReasoningLimits) -> Iterator[Diagnostic]:
    model = target.model_id
    if limits.control == "none":
        message = (
            f"model '{model}' ({limits.family}) has no reasoning control: model.reasoning is not sent to it"
        )
        yield r.at((*target.path, "modelId"), "AST230", message)
        return
    if r.effort == "none" and not limits.can_disable:
        key = "effort" if "effort" in r.reasoning else "budgetTokens"
        message = f"'{model}' cannot turn thinking off: it thinks with its smallest budget ({limits.minimum})"
        yield r.at(r.own(key), "AST236", message)
        return
    yield from _budget(r, target, limits)
    cap = r.output_cap
    if limits.control == "budget" and limits.minimum > 1 and cap is not None and cap <= limits.minimum:
        message = (
            f"maxOutputTokens {cap} leaves no room for thinking on '{model}' "
            f"(budget at least {limits.minimum}, below the output cap): it never thinks"
        )
        yield r.at(r.model_key("maxOutputTokens"), "AST237", message)


def _temperature(r: _AgentReasoning, claude: list[Target]) -> Iterator[Diagnostic]:
    temperature = r.agent.model.get("temperature")
    if not claude or temperature is None:
        return
    message = (
        f"temperature {temperature} cannot be used with reasoning on '{claude[0].model_id}': "
        "Claude takes no temperature while thinking (remove one of them)"
    )
    yield r.at(r.model_key("temperature"), "AST235", message)


def check_reasoning(config: Config, agent: AgentConfig) -> Iterator[Diagnostic]:
    """Every reasoning diagnostic of one agent (none when it sets no `model.reasoning`)."""
    reasoning = agent.model.get("reasoning")
    if not isinstance(reasoning, Mapping):
        return
    r = _AgentReasoning(config, agent, reasoning)
    yield from _agreement(r)
    if r.effort is None:
        return
    yield from _output_room(r)
    thinking_claude: list[Target] = []
    for target, limits in _targets(agent):
        yield from _per_target(r, target, limits)
        if r.effort != "none" and limits.control == "budget" and not limits.temperature_while_thinking:
            thinking_claude.append(target)
    yield from _temperature(r, thinking_claude)
