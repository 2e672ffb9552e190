"""Reasoning on Bedrock Converse: `reasoning_effort` in, `reasoningContent` out and back.

- Request: the model's own reasoning switch in `additionalModelRequestFields`, chosen by model
  family (`compiler/table/reasoning.py`): Anthropic Claude takes `thinking: {"type": "enabled", "budget_tokens": …}`
  (budget from `policy.reasoning`, fitted to the model: at least 1024, below `maxTokens`; `temperature`/`topP`
  are then not sent), Amazon Nova 2 `reasoningConfig: {"type": "enabled", "maxReasoningEffort": …}`
  (https://docs.aws.amazon.com/bedrock/latest/userguide/claude-messages-extended-thinking.html,
  https://docs.aws.amazon.com/nova/latest/nova2-userguide/extended-thinking.html). Other models
  (DeepSeek-R1 always reasons) get nothing.
- Answer: `reasoningContent.reasoningText.text` → `reasoning_content`; the blocks (text and
  `signature`, or `redactedContent`) ride in the first tool call's id
  (`openai/reasoning_carrier.py`) and go back before the `toolUse` blocks of that assistant turn,
  as Bedrock requires for Claude with thinking and tools.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from astra_sidecar.compiler.table import Agent
from astra_sidecar.compiler.table.reasoning import limits_for
from astra_sidecar.sidecar.policy.reasoning import effort_of, level_for, thinking_budget
from astra_sidecar.sidecar.protocols.base import Body
from astra_sidecar.sidecar.protocols.openai import reasoning_carrier
from astra_sidecar.sidecar.protocols.openai.wire import Json


def _claude(body: Body, agent: Agent | None, model_id: str, max_tokens: int | None) -> Json | None:
    budget = thinking_budget(body, agent, "bedrock", model_id, max_tokens)
    return {"thinking": {"type": "enabled", "budget_tokens": budget}} if budget else None


def _nova(body: Body, agent: Agent | None, model_id: str, max_tokens: int | None) -> Json | None:
    del agent, model_id, max_tokens
    level = level_for(body)
    if level is None or level == "none":
        return None
    return {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": level}}


#: The reasoning control (`compiler/table/reasoning.py`) → how it is switched on.
FIELDS_BY_CONTROL: Final[Mapping[str, Callable[[Body, Agent | None, str, int | None], Json | None]]] = {
    "budget": _claude,
    "level": _nova,
}


def reasoning_fields(
    body: Body, model_id: str, max_tokens: int | None, agent: Agent | None = None
) -> Json | None:
    """The `additionalModelRequestFields` that switch reasoning on, or None."""
    if effort_of(body) is None:
        return None
    limits = limits_for("bedrock", model_id)
    build = FIELDS_BY_CONTROL.get(limits.control) if limits is not None else None
    return build(body, agent, model_id, max_tokens) if build is not None else None


def reasoning_blocks(content: Any) -> list[Json]:
    return [b for b in content or () if isinstance(b, dict) and isinstance(b.get("reasoningContent"), dict)]


def reasoning_text(blocks: list[Json]) -> str:
    texts = (((b.get("reasoningContent") or {}).get("reasoningText") or {}).get("text") for b in blocks)
    return "".join(t for t in texts if isinstance(t, str))


def uncarry(call_id: Any) -> tuple[Any, list[Json]]:
    plain, blocks = reasoning_carrier.uncarry(call_id)
    return plain, reasoning_blocks(blocks)


carry = reasoning_carrier.carry
