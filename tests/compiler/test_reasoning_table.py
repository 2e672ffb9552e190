"""The reasoning table (`compiler/table/reasoning.py`): each model family's control and how a
budget is fitted to it, and `model.reasoning` compiled into the routing table and loaded back."""

from __future__ import annotations

from pathlib import Path

import pytest

from astra_sidecar.compiler.loader import compile_file
from astra_sidecar.compiler.table import Reasoning, table_from_json
from astra_sidecar.compiler.table.reasoning import effort_for_budget, fit_budget, limits_for


@pytest.mark.parametrize(
    ("wire", "model", "control"),
    [
        ("anthropic", "claude-sonnet-4-5", "budget"),
        ("anthropic", "claude-3-7-sonnet-20250219", "budget"),
        ("anthropic", "claude-3-5-haiku-20241022", "none"),
        ("gemini", "gemini-2.5-flash-lite", "budget"),
        ("gemini", "publishers/google/models/gemini-2.5-pro", "budget"),
        ("gemini", "gemini-2.0-flash", "none"),
        ("bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0", "budget"),
        ("bedrock", "amazon.nova-2-lite-v1:0", "level"),
        ("bedrock", "meta.llama3-70b-instruct-v1:0", "none"),
    ],
)
def test_model_families(wire: str, model: str, control: str) -> None:
    limits = limits_for(wire, model)
    assert limits is not None and limits.control == control


def test_openai_compatible_providers_are_passed_through() -> None:
    assert limits_for("openai", "o3-mini") is None and limits_for("mock", "m") is None


@pytest.mark.parametrize(
    ("model", "budget", "cap", "fitted"),
    [
        ("gemini-2.5-flash", 30000, None, 24576),  # the model's largest
        ("gemini-2.5-flash", 0, None, 0),  # off
        ("gemini-2.5-flash-lite", 100, None, 512),  # the model's smallest
        ("gemini-2.5-pro", 0, None, 128),  # cannot be off: its smallest
        ("gemini-2.5-pro", 8192, 4000, 3999),  # below the output cap
        ("gemini-2.5-flash-lite", 8192, 300, 0),  # cannot fit above 512: off
    ],
)
def test_gemini_budgets(model: str, budget: int, cap: int | None, fitted: int) -> None:
    limits = limits_for("gemini", model)
    assert limits is not None and fit_budget(budget, limits, cap) == fitted


def test_claude_budgets() -> None:
    limits = limits_for("anthropic", "claude-opus-4-1")
    assert limits is not None
    assert [fit_budget(b, limits, 4096) for b in (500, 2000, 24576)] == [1024, 2000, 4095]
    assert fit_budget(2000, limits, 1024) == 0  # no room above 1024 below the cap


def test_budget_levels() -> None:
    assert [effort_for_budget(b) for b in (0, 128, 1024, 8191, 8192, 24575, 24576, 64000)] == [
        "none", "low", "low", "low", "medium", "medium", "high", "high"
    ]  # fmt: skip


def test_model_reasoning_in_the_table(tmp_path: Path) -> None:
    path = tmp_path / "astra.yml"
    path.write_text(
        "agents:\n"
        "  - id: thinker\n"
        "    model: {provider: claude, modelId: claude-sonnet-4-5, maxOutputTokens: 8000,\n"
        "            reasoning: {budgetTokens: 4000, expose: false}}\n"
        "  - id: plain\n"
        "    model: {provider: claude, modelId: claude-sonnet-4-5}\n"
    )
    table, found = compile_file(str(path))
    assert found == [] and table is not None
    assert table["agents"]["thinker"]["reasoning"] == {"effort": None, "budgetTokens": 4000, "expose": False}
    assert "reasoning" not in table["agents"]["plain"]  # absent: tables without it keep their hash
    loaded = table_from_json(table)
    assert loaded.agents["thinker"].reasoning == Reasoning(effort=None, budget_tokens=4000, expose=False)
    assert loaded.agents["plain"].reasoning is None
