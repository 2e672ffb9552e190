"""Per-plan-entry context windows (`planLimits`) and the mock's `toolCalls`, from astra.yml to table."""

from __future__ import annotations

import pytest

from astra_sidecar.compiler.loader import CompileError, load_routing_table
from astra_sidecar.compiler.schemas import TABLE_SCHEMA, validator
from astra_sidecar.compiler.table import (
    MockToolCall,
    PlanLimits,
    content_hash,
    dump_table_json,
    table_from_json,
)
from tests.compiler.helpers import Write, compile_text, lint_text

WINDOWS = """agents:
  small:
    model:
      provider: openai
      modelId: small
      maxContextTokens: 8000
      maxOutputTokens: 1000
      fallback:
        - {provider: openai, modelId: large, maxContextTokens: 128000}
        - {provider: openai, modelId: same}
  outer:
    model: {provider: groq, modelId: g, fallback: {agent: small}}
  plain:
    model: {provider: openai, modelId: p, maxContextTokens: 4000, fallback: {provider: groq, modelId: q}}
"""


def test_each_plan_entry_gets_its_window_and_a_fallback_without_one_inherits_the_agents() -> None:
    table = compile_text(WINDOWS)
    assert table["agents"]["small"]["planLimits"] == [
        {"maxContextTokens": 8000},
        {"maxContextTokens": 128000},
        {"maxContextTokens": 8000},
    ]
    assert list(validator(TABLE_SCHEMA).iter_errors(table)) == []
    agents = table_from_json(table).agents
    assert agents["small"].plan_limits == (PlanLimits(8000), PlanLimits(128000), PlanLimits(8000))
    assert agents["small"].context_limits() == (8000, 128000, 8000)


def test_spliced_entries_keep_the_windows_of_the_agent_that_lists_them() -> None:
    table = compile_text(WINDOWS)
    assert table["agents"]["outer"]["maxContextTokens"] is None
    assert table["agents"]["outer"]["planLimits"] == [
        {"maxContextTokens": None},
        {"maxContextTokens": 8000},
        {"maxContextTokens": 128000},
        {"maxContextTokens": 8000},
    ]


def test_plan_limits_are_left_out_when_every_entry_has_the_agents_window() -> None:
    """So the tables (and hashes) of configs without per-fallback windows are unchanged."""
    table = compile_text(WINDOWS)
    assert "planLimits" not in table["agents"]["plain"]
    agent = table_from_json(table).agents["plain"]
    assert (agent.plan_limits, agent.context_limits()) == ((), (4000, 4000))


def test_a_fallback_window_smaller_than_max_output_tokens_is_ast209() -> None:
    text = WINDOWS.replace(
        "modelId: large, maxContextTokens: 128000", "modelId: large, maxContextTokens: 900"
    )
    assert lint_text(text) == [
        "9:64: error AST209 maxOutputTokens 1000 is larger than fallback 1's maxContextTokens 900: "
        "no answer would fit its window"
    ]


def test_a_table_whose_plan_limits_do_not_match_its_plan_is_refused(write: Write) -> None:
    data = compile_text(WINDOWS)
    data["agents"]["small"]["planLimits"] = [{"maxContextTokens": 1}]
    data["hash"] = content_hash(data)
    path = write(dump_table_json(data), "table.json")
    with pytest.raises(CompileError) as caught:
        load_routing_table(str(path))
    assert [d.message for d in caught.value.diagnostics] == [
        "agents.small.planLimits: 1 planLimits for 3 plan entries"
    ]


MOCK = """agents:
  tools:
    model:
      provider: mock
      modelId: m
      mock:
        reply: Sure.
        toolCalls:
          - name: refund
            arguments: {order: 42, note: "café", items: [1, 2], when: 2024-01-01}
          - name: lookup
"""


def test_mock_tool_calls_carry_their_arguments_as_a_json_string() -> None:
    table = compile_text(MOCK)
    [(key, cluster)] = table["clusters"].items()
    assert key.startswith("mock:m:mock://local#")
    assert cluster["mock"]["toolCalls"] == [
        {"name": "refund", "arguments": '{"order":42,"note":"café","items":[1,2],"when":"2024-01-01"}'},
        {"name": "lookup", "arguments": "{}"},
    ]
    assert list(validator(TABLE_SCHEMA).iter_errors(table)) == []
    mock = table_from_json(table).clusters[key].mock
    assert mock is not None and mock.tool_calls == (
        MockToolCall("refund", '{"order":42,"note":"café","items":[1,2],"when":"2024-01-01"}'),
        MockToolCall("lookup", "{}"),
    )


def test_mocks_without_tool_calls_keep_their_table_shape() -> None:
    cluster = compile_text("agents:\n  a:\n    model: {provider: mock, modelId: m, mock: {toolCalls: []}}\n")
    assert (
        cluster["clusters"]
        == compile_text("agents:\n  a:\n    model: {provider: mock, modelId: m}\n")["clusters"]
    )
    assert "toolCalls" not in cluster["clusters"]["mock:m:mock://local"]["mock"]


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ("{name: 'has space'}", "error AST104"),
        ("{name: refund, args: {}}", "error AST101"),
        ("{arguments: {}}", "error AST102"),
        ("{name: refund, arguments: [1]}", "error AST103"),
    ],
)
def test_mock_tool_calls_are_checked(call: str, expected: str) -> None:
    found = lint_text(
        f"agents:\n  a:\n    model: {{provider: mock, modelId: m, mock: {{toolCalls: [{call}]}}}}\n"
    )
    assert len(found) == 1 and expected in found[0], found
