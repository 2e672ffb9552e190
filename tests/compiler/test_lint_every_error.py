"""`astra lint` reports every independent mistake of a file in one run: schema errors inside one
agent do not hide the document checks of the others; errors outside the agents still stop there."""

from __future__ import annotations

import pytest

from astra_sidecar.compiler import loader
from tests.compiler.helpers import lint_text

#: Five ordinary mistakes in five agents: two found by the schema, three by the document checks.
FIVE_MISTAKES = """\
agents:
  alpha:
    model: {provider: openai, modelId: gpt-4o, temprature: 0.2}
  beta:
    model: {provider: opnai, modelId: gpt-4o}
  gamma:
    model: {provider: openai, modelId: gpt-4o, maxOutputTokens: -5}
  delta:
    model: {provider: anthropic, modelId: claude-sonnet-4}
    tools: {allow: [search], deny: [search]}
  eps:
    model: {provider: openai, modelId: gpt-4o}
    systemPrompt: "Hello {{ nme }"
"""


def test_five_mistakes_in_one_run() -> None:
    assert lint_text(FIVE_MISTAKES) == [
        "3:48: error AST101 unknown key 'temprature' in agents.alpha.model; did you mean 'temperature'?",
        "5:23: error AST202 unknown provider 'opnai'; did you mean 'openai'?",
        "7:65: error AST105 agents.gamma.model.maxOutputTokens: -5 is out of range: must be at least 1",
        "10:37: error AST211 tool 'search' is both allowed (line 10) and denied",
        "13:20: error AST212 systemPrompt template error: unexpected '}'",
    ]


def test_list_form_keeps_the_positions_of_the_agents_that_passed() -> None:
    text = (
        "agents:\n"
        "  - id: a\n    model: {provider: mock, modelId: m, bogus: 1}\n"
        "  - id: b\n    model: {provider: mock, modelId: m}\n"
        "    tools: {allow: [x], deny: [x]}\n"
    )
    assert lint_text(text) == [
        "3:41: error AST101 unknown key 'bogus' in agents[0].model",
        "6:32: error AST211 tool 'x' is both allowed (line 6) and denied",
    ]


def test_a_schema_error_outside_the_agents_still_stops_before_the_document_checks() -> None:
    text = (
        "settings: {retry: {maxRetries: -1}}\n"
        "agents:\n  a:\n    model: {provider: mock, modelId: m}\n    tools: {allow: [x], deny: [x]}\n"
    )
    codes = [line.split()[2] for line in lint_text(text)]
    assert codes == ["AST105"]


VERTEX = "agents:\n  v:\n    model: {provider: gemini, modelId: gemini-2.5-flash, vertex: {project: p, location: us-central1}}\n"


def test_check_env_names_the_vertex_extra_when_google_auth_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loader, "_has_google_auth", lambda: False)
    found = lint_text(VERTEX, env={})
    assert any(
        "AST215" in line and "pip install 'astra-sidecar[vertex]'" in line and "cluster " in line
        for line in found
    ), found
    assert lint_text(VERTEX) == [line for line in lint_text(VERTEX) if "AST215" not in line]


def test_check_env_switch_turns_ai_studio_into_vertex(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "_has_google_auth", lambda: False)
    studio = "agents:\n  g:\n    model: {provider: gemini, modelId: gemini-2.5-flash}\n"
    assert not [x for x in lint_text(studio, env={"GEMINI_API_KEY": "k"}) if "google-auth" in x]
    switched = lint_text(studio, env={"GEMINI_API_KEY": "k", "ASTRA_GEMINI_VERTEX_AI_ENABLED": "1"})
    assert [x.split(": ", 1)[0] for x in switched if "google-auth" in x] == ["3:23"]
