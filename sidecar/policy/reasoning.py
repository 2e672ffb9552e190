"""`reasoning_effort` (OpenAI's knob) → a thinking budget in tokens, for providers that take one.

One table for every provider that is driven by a budget (Anthropic `thinking.budget_tokens`,
Gemini 2.5 `thinkingConfig.thinkingBudget`, Bedrock's Claude `reasoning_config`). The figures
follow Google's own OpenAI mapping (https://ai.google.dev/gemini-api/docs/openai: low 1K,
medium 8K, high 24K); `minimal` is Anthropic's smallest budget
(https://docs.claude.com/en/docs/build-with-claude/extended-thinking: at least 1024, and less than
`max_tokens`). `none` turns thinking off.

The budget is clamped to the answer's output cap: Anthropic requires `budget_tokens < max_tokens`,
so a budget that cannot fit above the provider's minimum means no thinking (the answer still comes).
Reasoning text goes back to OpenAI clients as `reasoning_content` (the field vLLM and DeepSeek use),
never inside `content`.
"""

from __future__ import annotations

from typing import Any, Final

EFFORTS: Final = ("none", "minimal", "low", "medium", "high")

#: reasoning_effort → budget tokens; `none` is 0 (off).
BUDGET_BY_EFFORT: Final[dict[str, int]] = {
    "none": 0,
    "minimal": 1024,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
}

#: Anthropic's (and Bedrock Claude's) smallest accepted budget.
ANTHROPIC_MIN_BUDGET: Final = 1024

#: The OpenAI-format field reasoning text travels in (message and delta).
REASONING_FIELD: Final = "reasoning_content"


def effort_of(body: dict[str, Any]) -> str | None:
    """The request's `reasoning_effort`, when it is one of the known levels."""
    effort = body.get("reasoning_effort")
    return effort if isinstance(effort, str) and effort in BUDGET_BY_EFFORT else None


def clamped_budget(effort: str, output_cap: int | None, *, minimum: int = 0) -> int:
    """The budget for `effort`, below `output_cap` (the answer's max tokens) and at least
    `minimum`; 0 (thinking off) when it cannot fit."""
    budget = BUDGET_BY_EFFORT[effort]
    if budget == 0:
        return 0
    if output_cap is not None:
        budget = min(budget, output_cap - 1)
    return budget if budget >= max(minimum, 1) else 0
