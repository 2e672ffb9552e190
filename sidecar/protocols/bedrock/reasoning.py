"""Reasoning on Bedrock Converse: `reasoning_effort` in, `reasoningContent` out and back.

- Request: the model's own reasoning switch in `additionalModelRequestFields`, chosen by model
  family (data below): Anthropic Claude takes `thinking: {"type": "enabled", "budget_tokens": …}`
  (budget from `policy.reasoning`, clamped below `maxTokens`, at least 1024; `temperature`/`topP`
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

from astra_sidecar.sidecar.policy.reasoning import ANTHROPIC_MIN_BUDGET, clamped_budget, effort_of
from astra_sidecar.sidecar.protocols.base import Body
from astra_sidecar.sidecar.protocols.openai import reasoning_carrier
from astra_sidecar.sidecar.protocols.openai.wire import Json


def _claude(effort: str, max_tokens: int | None) -> Json | None:
    budget = clamped_budget(effort, max_tokens, minimum=ANTHROPIC_MIN_BUDGET)
    return {"thinking": {"type": "enabled", "budget_tokens": budget}} if budget else None


def _nova(effort: str, max_tokens: int | None) -> Json | None:
    del max_tokens
    if effort == "none":
        return None
    level = "low" if effort == "minimal" else effort
    return {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": level}}


#: Model-id fragment → how that family's reasoning is switched on.
FIELDS_BY_FAMILY: Final[Mapping[str, Callable[[str, int | None], Json | None]]] = {
    "anthropic.claude": _claude,
    "amazon.nova-2": _nova,
}


def reasoning_fields(body: Body, model_id: str, max_tokens: int | None) -> Json | None:
    """The `additionalModelRequestFields` that switch reasoning on, or None."""
    effort = effort_of(body)
    if effort is None:
        return None
    build = next((f for key, f in FIELDS_BY_FAMILY.items() if key in model_id), None)
    return build(effort, max_tokens) if build is not None else None


def reasoning_blocks(content: Any) -> list[Json]:
    return [b for b in content or () if isinstance(b, dict) and isinstance(b.get("reasoningContent"), dict)]


def reasoning_text(blocks: list[Json]) -> str:
    texts = (((b.get("reasoningContent") or {}).get("reasoningText") or {}).get("text") for b in blocks)
    return "".join(t for t in texts if isinstance(t, str))


def uncarry(call_id: Any) -> tuple[Any, list[Json]]:
    plain, blocks = reasoning_carrier.uncarry(call_id)
    return plain, reasoning_blocks(blocks)


carry = reasoning_carrier.carry
