"""The agent's reasoning default (`model.reasoning`), written into a request that sets none, in
the request's own API (each format's `PolicyAccess.apply_reasoning_default` calls one of these).

- OpenAI bodies (Chat Completions, and Responses after translation): `reasoning_effort`; the
  adapter then maps it to the provider's control (`policy.reasoning`). Responses bodies sent
  natively: `reasoning.effort`.
- Anthropic Messages on the native path: `thinking: {"type": "enabled", "budget_tokens": …}`, the
  budget fitted to the model and below `max_tokens`. Not when the caller already chose what
  thinking excludes (a temperature, `top_k`, `top_p` below 0.95, a forced tool):
  the caller's own choices win (https://docs.claude.com/en/docs/build-with-claude/extended-thinking).
- Gemini generateContent on the native path: `generationConfig.thinkingConfig` with the fitted
  `thinkingBudget`, and `includeThoughts` when the agent exposes reasoning.
"""

from __future__ import annotations

from typing import Any

from astra_sidecar.compiler.table import Agent
from astra_sidecar.sidecar.policy.reasoning import budget_for_effort, default_effort, exposes

Body = dict[str, Any]

_FORCED_TOOL = frozenset({"any", "tool"})


def openai_default(body: Body, agent: Agent) -> None:
    effort = default_effort(agent)
    if effort is not None and body.get("reasoning_effort") is None:
        body["reasoning_effort"] = effort


def responses_default(body: Body, agent: Agent) -> None:
    """Responses bodies on a native path: `reasoning.effort` (other `reasoning` keys kept)."""
    effort = default_effort(agent)
    reasoning = body.get("reasoning")
    reasoning = reasoning if isinstance(reasoning, dict) else {}
    if effort is not None and reasoning.get("effort") is None:
        body["reasoning"] = {**reasoning, "effort": effort}


def _thinking_excluded(body: Body) -> bool:
    """True when the caller chose a sampling control or tool choice Anthropic refuses with thinking."""
    temperature, top_p = body.get("temperature"), body.get("top_p")
    choice = body.get("tool_choice")
    return (
        temperature is not None
        or body.get("top_k") is not None
        or (isinstance(top_p, int | float) and top_p < 0.95)
        or (isinstance(choice, dict) and choice.get("type") in _FORCED_TOOL)
    )


def anthropic_default(body: Body, agent: Agent, model_id: str) -> None:
    effort = default_effort(agent)
    config = body.get("output_config")
    asked = "thinking" in body or (isinstance(config, dict) and "effort" in config)
    if effort is None or effort == "none" or asked or _thinking_excluded(body):
        return
    cap = body.get("max_tokens")
    budget = budget_for_effort(effort, agent, "anthropic", model_id, cap if isinstance(cap, int) else None)
    if budget:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}


def gemini_default(body: Body, agent: Agent, model_id: str) -> None:
    effort = default_effort(agent)
    config = body.get("generationConfig")
    config = config if isinstance(config, dict) else {}
    if effort is None or "thinkingConfig" in config:
        return
    cap = config.get("maxOutputTokens")
    budget = budget_for_effort(effort, agent, "gemini", model_id, cap if isinstance(cap, int) else None)
    if budget is None:
        return
    thinking: Body = {"thinkingBudget": budget}
    if budget and exposes(agent):
        thinking["includeThoughts"] = True
    body["generationConfig"] = {**config, "thinkingConfig": thinking}
