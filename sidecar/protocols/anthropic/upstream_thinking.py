"""Extended thinking for OpenAI callers: `reasoning_effort` in, thinking blocks out and back.

- `reasoning_effort` → `thinking: {"type": "enabled", "budget_tokens": …}` (budget from
  `policy.reasoning`, fitted to the model: at least 1024, below `max_tokens`; Claude 3 models
  before 3.7 have no thinking); `none`, a budget that cannot fit,
  or a forced tool choice (Anthropic allows only `auto`/`none` with thinking) → no thinking. With
  thinking on, `temperature`/`top_k` are dropped and `top_p` is kept only in [0.95, 1]
  (https://docs.claude.com/en/docs/build-with-claude/extended-thinking).
- Thinking text goes to the client as `reasoning_content`. The thinking blocks themselves (text and
  `signature`, or `redacted_thinking` data) ride opaquely in the first tool call's id, so that the
  next request of a tool loop, which Anthropic requires to start the assistant turn with them,
  gets them back (`openai/reasoning_carrier.py`).
"""

from __future__ import annotations

from typing import Any

from astra_sidecar.compiler.table import Agent
from astra_sidecar.sidecar.policy.reasoning import thinking_budget
from astra_sidecar.sidecar.protocols.openai import reasoning_carrier

Json = dict[str, Any]

THINKING_BLOCKS = frozenset({"thinking", "redacted_thinking"})


def thinking_param(
    body: Json, max_tokens: int, agent: Agent | None = None, model_id: str = ""
) -> Json | None:
    """The `thinking` object for the body's `reasoning_effort` on `model_id`, fitted to the model
    (`compiler/table/reasoning.py`); None for no thinking."""
    budget = thinking_budget(body, agent, "anthropic", model_id or str(body.get("model") or ""), max_tokens)
    return {"type": "enabled", "budget_tokens": budget} if budget else None


def sampling_with_thinking(sampling: Json) -> Json:
    """The sampling keys Anthropic accepts while thinking."""
    top_p = sampling.get("top_p")
    return {"top_p": top_p} if isinstance(top_p, (int, float)) and 0.95 <= top_p <= 1 else {}


def thinking_blocks(content: Any) -> list[Json]:
    """The thinking and redacted-thinking blocks of an answer, as Anthropic sent them."""
    return [b for b in content or () if isinstance(b, dict) and b.get("type") in THINKING_BLOCKS]


def thinking_text(blocks: list[Json]) -> str:
    return "".join(str(b.get("thinking") or "") for b in blocks if b.get("type") == "thinking")


def carry(tool_use_id: str, blocks: list[Json]) -> str:
    return reasoning_carrier.carry(tool_use_id, blocks)


def uncarry(call_id: Any) -> tuple[Any, list[Json]]:
    """(the Anthropic tool-use id, the thinking blocks it carries) of one of our ids."""
    plain, blocks = reasoning_carrier.uncarry(call_id)
    return plain, [b for b in blocks if b.get("type") in THINKING_BLOCKS]
