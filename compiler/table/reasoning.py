"""What each model family accepts as a reasoning control, and how a budget is fitted to it.

One table, read by the compiler's checks (`compiler/reasoning_checks.py`, AST230-AST237) and by
the sidecar when it builds a request (`sidecar/policy/reasoning.py`), so both agree. Figures are
the providers' own:

- Anthropic: `budget_tokens` at least 1024 and below `max_tokens`; Claude 3.7 and the Claude 4
  family think, earlier Claude 3 models do not
  (https://docs.claude.com/en/docs/build-with-claude/extended-thinking). Claude on Bedrock takes
  the same `thinking` object in `additionalModelRequestFields`
  (https://docs.aws.amazon.com/bedrock/latest/userguide/claude-messages-extended-thinking.html).
- Gemini `thinkingBudget` (https://ai.google.dev/gemini-api/docs/thinking#set-budget):
  2.5 Pro 128-32768 and thinking cannot be turned off; 2.5 Flash 0-24576; 2.5 Flash-Lite
  512-24576 (0 turns it off). Gemini 3 takes `thinkingLevel` but still accepts `thinkingBudget`;
  Gemini 3 Pro cannot turn thinking off. Gemini 2.0 and earlier have no thinking control.
- Amazon Nova 2 on Bedrock: `reasoningConfig.maxReasoningEffort` low/medium/high, no budget
  (https://docs.aws.amazon.com/nova/latest/userguide/extended-thinking.html).

OpenAI-compatible providers take `reasoning_effort` as they document it: the sidecar passes it
through, and there is nothing here to check it against (`limits_for` answers None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Control = Literal["budget", "level", "none"]

EFFORTS: Final = ("none", "minimal", "low", "medium", "high")

#: reasoning_effort → budget tokens, after Google's OpenAI mapping
#: (https://ai.google.dev/gemini-api/docs/openai: low 1K, medium 8K, high 24K); `minimal` is
#: Anthropic's smallest budget; `none` is 0 (off).
BUDGET_BY_EFFORT: Final[dict[str, int]] = {
    "none": 0,
    "minimal": 1024,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
}


@dataclass(frozen=True, slots=True)
class ReasoningLimits:
    """A model family's reasoning control: `budget` (tokens), `level` (effort names only) or
    `none`; for budgets, the smallest and largest accepted and whether 0 (off) is accepted;
    `temperature_while_thinking` False where a temperature is refused while thinking (Claude)."""

    family: str
    control: Control
    minimum: int = 0
    maximum: int | None = None
    can_disable: bool = True
    temperature_while_thinking: bool = True


_CLAUDE = ReasoningLimits(
    "Claude (extended thinking)", "budget", minimum=1024, temperature_while_thinking=False
)
_OLD_CLAUDE = ReasoningLimits("Claude 3 before 3.7", "none")
_NOVA = ReasoningLimits("Amazon Nova 2", "level")
_NO_BEDROCK = ReasoningLimits("this Bedrock model family", "none")

#: Gemini model-id prefixes, most specific first.
_GEMINI: Final = (
    ("gemini-2.5-flash-lite", ReasoningLimits("Gemini 2.5 Flash-Lite", "budget", 512, 24576)),
    ("gemini-2.5-flash", ReasoningLimits("Gemini 2.5 Flash", "budget", 1, 24576)),
    ("gemini-2.5-pro", ReasoningLimits("Gemini 2.5 Pro", "budget", 128, 32768, can_disable=False)),
    ("gemini-3-pro", ReasoningLimits("Gemini 3 Pro", "budget", 128, 32768, can_disable=False)),
    ("gemini-3", ReasoningLimits("Gemini 3", "budget", 1, 24576)),
)
_OLD_GEMINI = ReasoningLimits("Gemini before 2.5", "none")


def _model_name(model_id: str) -> str:
    """The model name of a Vertex path (`publishers/google/models/gemini-…`) or a plain id."""
    return model_id.rsplit("/", 1)[-1].lower()


def _claude(model_id: str) -> ReasoningLimits:
    name = model_id.lower()
    return _OLD_CLAUDE if "claude-3-" in name and "claude-3-7" not in name else _CLAUDE


def _gemini(model_id: str) -> ReasoningLimits:
    name = _model_name(model_id)
    return next((limits for prefix, limits in _GEMINI if name.startswith(prefix)), _OLD_GEMINI)


def _bedrock(model_id: str) -> ReasoningLimits:
    name = model_id.lower()
    if "anthropic.claude" in name:
        return _claude(name)
    return _NOVA if "amazon.nova-2" in name else _NO_BEDROCK


def limits_for(wire: str, model_id: str) -> ReasoningLimits | None:
    """The reasoning control of `model_id` on a provider of wire format `wire`; None where the
    sidecar passes `reasoning_effort` through (OpenAI-compatible providers, the mock)."""
    if wire == "anthropic":
        return _claude(model_id)
    if wire == "gemini":
        return _gemini(model_id)
    if wire == "bedrock":
        return _bedrock(model_id)
    return None


def effort_for_budget(budget: int) -> str:
    """The effort level a budget stands for: the highest level whose budget it reaches (so a
    translated budget is never spent beyond what was asked), `low` for any smaller one, `none`
    for 0."""
    if budget <= 0:
        return "none"
    if budget < BUDGET_BY_EFFORT["medium"]:
        return "low"
    return "medium" if budget < BUDGET_BY_EFFORT["high"] else "high"


def fit_budget(budget: int, limits: ReasoningLimits, output_cap: int | None) -> int:
    """`budget` fitted to the model: within [minimum, maximum] and below `output_cap` (the
    answer needs room after the thinking). 0 means off; a model that cannot turn thinking off
    gets its smallest budget instead."""
    floor = 0 if limits.can_disable else limits.minimum
    if budget <= 0:
        return floor
    budget = max(budget, limits.minimum)
    if limits.maximum is not None:
        budget = min(budget, limits.maximum)
    if output_cap is not None and budget >= output_cap:
        budget = output_cap - 1
    return budget if budget >= max(limits.minimum, 1) else floor
