"""Semantic checks beyond the schema: exact codes, messages and positions."""

from __future__ import annotations

import pytest

from tests.compiler.helpers import lint_text

FAST = "settings:\n  timeouts: {attemptMs: 10000}\n"


def test_duplicate_agent_id_in_list_form() -> None:
    text = "agents:\n  - id: a\n    model: {provider: openai, modelId: m}\n  - id: a\n    model: {provider: openai, modelId: n}\n"
    assert lint_text(text) == ["4:9: error AST201 duplicate agent id 'a' (first defined at line 2)"]


def test_mapping_form_id_must_match_its_key() -> None:
    text = "agents:\n  a:\n    id: b\n    model: {provider: openai, modelId: m}\n"
    assert lint_text(text) == ["3:9: error AST201 id 'b' differs from the agent's key 'a'"]


def test_mapping_form_id_equal_to_its_key_is_fine() -> None:
    assert lint_text("agents:\n  a:\n    id: a\n    model: {provider: openai, modelId: m}\n") == []


def test_unknown_provider_in_a_model_and_in_providers() -> None:
    text = "providers:\n  antropic: {}\nagents:\n  - id: a\n    model: {provider: gemeni, modelId: m}\n"
    assert lint_text(text) == [
        "2:3: error AST202 unknown provider 'antropic'; did you mean 'anthropic'?",
        "5:23: error AST202 unknown provider 'gemeni'; did you mean 'gemini'?",
    ]


def test_provider_given_twice_through_an_alias() -> None:
    text = "providers:\n  claude: {}\n  anthropic: {}\nagents:\n  - id: a\n    model: {provider: claude, modelId: m}\n"
    assert lint_text(text) == ["3:3: error AST008 duplicate key 'anthropic': same provider as 'claude' (line 2)"]


def test_vllm_needs_an_endpoint_somewhere() -> None:
    text = "agents:\n  - id: a\n    model: {provider: vllm, modelId: m}\n"
    assert lint_text(text) == [
        "3:23: error AST203 provider 'vllm' needs an endpoint: set endpoint here or in providers.vllm"
    ]
    assert lint_text("providers:\n  vllm: {endpoint: 'http://gpu:8000'}\n" + text) == []


def test_fallback_same_as_primary_after_normalising_the_url() -> None:
    text = FAST + (
        "agents:\n  - id: a\n    model:\n      provider: ollama\n      modelId: m\n"
        "      endpoint: http://localhost:11434\n"
        "      fallback: {provider: ollama, modelId: m, endpoint: 'http://localhost:11434/v1/'}\n"
    )
    assert lint_text(text) == [
        "9:17: error AST204 fallback is the same as the primary (ollama:m:http://localhost:11434/v1)"
    ]


def test_repeated_fallback_through_an_alias() -> None:
    text = FAST + (
        "agents:\n  - id: a\n    model:\n      provider: openai\n      modelId: m\n      fallback:\n"
        "        - {provider: claude, modelId: c}\n        - {provider: anthropic, modelId: c}\n"
    )
    assert lint_text(text) == [
        "10:11: error AST205 fallback claude:c:https://api.anthropic.com is already in the plan (line 9)"
    ]


def test_fallback_cycle_is_reported_once() -> None:
    text = FAST + (
        "agents:\n  a:\n    model: {provider: openai, modelId: m, fallback: {agent: b}}\n"
        "  b:\n    model: {provider: claude, modelId: c, fallback: {agent: c}}\n"
        "  c:\n    model: {provider: groq, modelId: g, fallback: [{agent: a}]}\n"
    )
    assert lint_text(text) == ["9:60: error AST206 fallback cycle: a → b → c → a"]


def test_agent_falling_back_to_itself() -> None:
    text = FAST + "agents:\n  a:\n    model: {provider: openai, modelId: m, fallback: {agent: a}}\n"
    assert lint_text(text) == ["5:61: error AST206 fallback cycle: a → a"]


def test_unknown_fallback_agent() -> None:
    text = FAST + "agents:\n  chat:\n    model: {provider: openai, modelId: m, fallback: {agent: chats}}\n"
    assert lint_text(text) == ["5:61: error AST207 fallback names unknown agent 'chats'; did you mean 'chat'?"]


def test_fallback_lacking_tools_when_the_agent_allows_tools() -> None:
    text = FAST + (
        "agents:\n  - id: a\n    model:\n      provider: openai\n      modelId: m\n"
        "      fallback: {provider: ollama, modelId: small, capabilities: {tools: false, streaming: false}}\n"
    )
    assert lint_text(text) == [
        "8:17: warning AST208 fallback 1 (ollama:small:http://localhost:11434/v1) lacks tools and streaming, "
        "which agent 'a' may need"
    ]


def test_fallback_without_tools_is_fine_when_the_agent_allows_none() -> None:
    text = FAST + (
        "agents:\n  - id: a\n    model:\n      provider: openai\n      modelId: m\n"
        "      fallback: {provider: ollama, modelId: small, capabilities: {tools: false}}\n"
        "    tools: {allow: []}\n"
    )
    assert lint_text(text) == []


def test_max_output_tokens_above_context() -> None:
    text = "agents:\n  - id: a\n    model: {provider: openai, modelId: m, maxContextTokens: 10, maxOutputTokens: 11}\n"
    assert lint_text(text) == ["3:82: error AST209 maxOutputTokens 11 is larger than maxContextTokens 10"]


def test_temperature_checked_against_primary_and_fallbacks() -> None:
    text = FAST + (
        "agents:\n  - id: a\n    model:\n      provider: openai\n      modelId: m\n      temperature: 1.6\n"
        "      fallback:\n        - {provider: mistral, modelId: s}\n        - {provider: bedrock, modelId: b, region: eu-west-1}\n"
    )
    assert lint_text(text) == [
        "8:20: error AST210 temperature 1.6 is above 1.0, the maximum of provider 'bedrock' "
        "(fallback 2: bedrock:b:https://bedrock-runtime.eu-west-1.amazonaws.com)",
        "8:20: error AST210 temperature 1.6 is above 1.5, the maximum of provider 'mistral' "
        "(fallback 1: mistral:s:https://api.mistral.ai/v1)",
    ]


def test_tool_allowed_and_denied() -> None:
    text = "agents:\n  - id: a\n    model: {provider: openai, modelId: m}\n    tools:\n      allow: [x, y]\n      deny: [z, y]\n"
    assert lint_text(text) == ["6:17: error AST211 tool 'y' is both allowed (line 5) and denied"]


def test_template_syntax_error_in_a_block_scalar() -> None:
    text = "agents:\n  - id: a\n    model: {provider: openai, modelId: m}\n    systemPrompt: |\n      ok\n      {{ date }\n"
    assert lint_text(text) == ["6:7: error AST212 systemPrompt template error: unexpected '}'"]


def test_unknown_filter_is_a_template_error_even_inside_if() -> None:
    text = "agents:\n  - id: a\n    model: {provider: openai, modelId: m}\n    systemPrompt: \"{% if 1 %}{{ date | shout }}{% endif %}\"\n"
    assert lint_text(text) == ["4:20: error AST212 systemPrompt template error: No filter named 'shout'."]


def test_undefined_variables_and_fields() -> None:
    text = (
        "agents:\n  - id: a\n    model: {provider: openai, modelId: m}\n    promptVars: {team: ops}\n"
        "    systemPrompt: 'Hi {{ vars.team }} {{ vars.nope }} {{ agent.name }} {{ user }}'\n"
    )
    assert lint_text(text) == [
        "5:47: error AST213 systemPrompt uses undefined variable 'vars.nope' (vars has: team)",
        "5:64: error AST213 systemPrompt uses undefined variable 'agent.name' (agent has: displayName, id, tier)",
        "5:75: error AST213 systemPrompt uses undefined variable 'user' (available: agent, model, vars, date, now)",
    ]


def test_template_locals_are_not_undefined() -> None:
    text = (
        "agents:\n  - id: a\n    model: {provider: openai, modelId: m}\n"
        "    systemPrompt: '{% set x = 1 %}{% for t in [1] %}{{ t }}{{ x }}{% endfor %}{{ now }}{{ model.modelId }}'\n"
    )
    assert lint_text(text) == []


def test_latency_budget_with_defaults_and_a_fallback() -> None:
    # Defaults: 3 tries of 30000 ms + 750 ms backoff (250 + 500, jitter only shortens) = 90750 ms
    # per plan entry, deadline 120000 ms. Fallback 1 starts after 90750 ms (reached); fallback 2
    # after 181500 ms (may not be).
    text = "agents:\n  - id: a\n    model: {provider: openai, modelId: m, fallback: {provider: groq, modelId: g}}\n"
    assert lint_text(text) == []
    second = text.replace("fallback: {provider: groq, modelId: g}",
                          "fallback: [{provider: groq, modelId: g}, {provider: mistral, modelId: s}]")
    assert lint_text(second) == [
        "2:9: warning AST214 worst case, each plan entry takes 90750 ms (3 tries of 30000 ms attemptMs + 750 ms "
        "backoff), so fallback 2 (mistral:s:https://api.mistral.ai/v1) starts after 181500 ms, past "
        "requestTimeoutMs 120000: later fallbacks may never be reached"
    ]


def test_latency_budget_uses_agent_overrides() -> None:
    text = (
        "agents:\n  a:\n    model: {provider: openai, modelId: m, fallback: {provider: groq, modelId: g}}\n"
        "    retry: {maxRetries: 0}\n    timeouts: {attemptMs: 30000}\n    requestTimeoutMs: 30000\n"
    )
    assert lint_text(text) == [
        "2:3: warning AST214 worst case, each plan entry takes 30000 ms (1 tries of 30000 ms attemptMs + 0 ms "
        "backoff), so fallback 1 (groq:g:https://api.groq.com/openai/v1) starts after 30000 ms, past "
        "requestTimeoutMs 30000: later fallbacks may never be reached"
    ]
    assert lint_text(text.replace("requestTimeoutMs: 30000", "requestTimeoutMs: 30001")) == []


ENV_CONFIG = (
    "settings:\n  inboundAuth: {tokenEnv: GATE}\n"
    "providers:\n  openai: {apiKeyEnv: TEAM_KEY}\n"
    "agents:\n"
    "  - id: a\n    model: {provider: openai, modelId: m}\n"
    "  - id: b\n    model: {provider: openai, modelId: n}\n"
    "  - id: c\n    model: {provider: bedrock, modelId: x}\n"
    "  - id: d\n    model: {provider: vllm, modelId: v, endpoint: 'http://gpu:8000'}\n"
    "  - id: e\n    model: {provider: claude, modelId: c, credentials: passthrough}\n"
    "  - id: f\n    model: {provider: bedrock, modelId: y, region: us-east-1}\n"
)


def test_check_env_reports_each_missing_variable_once() -> None:
    assert lint_text(ENV_CONFIG, env={}) == [
        "2:27: warning AST215 environment variable GATE is not set (inbound bearer token)",
        "7:23: warning AST215 environment variable TEAM_KEY is not set (API key of openai:m:https://api.openai.com/v1)",
        "11:23: warning AST215 environment variable AWS_REGION is not set (bedrock model x has no region configured)",
    ]


def test_check_env_is_quiet_when_variables_are_set() -> None:
    assert lint_text(ENV_CONFIG, env={"GATE": "t", "TEAM_KEY": "k", "AWS_REGION": "eu-west-1"}) == []


def test_check_env_accepts_aws_default_region() -> None:
    assert lint_text(ENV_CONFIG, env={"GATE": "t", "TEAM_KEY": "k", "AWS_DEFAULT_REGION": "eu-west-1"}) == []


def test_check_env_treats_empty_as_missing() -> None:
    found = lint_text(ENV_CONFIG, env={"GATE": "", "TEAM_KEY": "k", "AWS_REGION": "r"})
    assert [line.split(" ", 3)[3] for line in found] == ["environment variable GATE is not set (inbound bearer token)"]


def test_check_env_is_off_without_an_env() -> None:
    assert lint_text(ENV_CONFIG) == []


def test_cluster_conflict_first_definition_wins() -> None:
    text = (
        "agents:\n  - id: a\n    model: {provider: openai, modelId: m}\n"
        "  - id: b\n    model: {provider: openai, modelId: m, capabilities: {tools: false, streaming: false}}\n"
    )
    assert lint_text(text) == [
        "5:12: warning AST216 cluster openai:m:https://api.openai.com/v1 is also defined at line 3 with different "
        "streaming, tools; the first definition is used"
    ]


def test_mock_clusters_with_different_options_do_not_conflict() -> None:
    text = FAST + (
        "agents:\n  - id: a\n    model: {provider: mock, modelId: m, mock: {status: 503}}\n"
        "  - id: b\n    model: {provider: mock, modelId: m, mock: {status: 500}}\n"
    )
    assert lint_text(text) == []


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("{provider: openai, modelId: m, region: eu-west-1}",
         "3:43: error AST217 region applies only to provider 'bedrock', not 'openai'"),
        ("{provider: openai, modelId: m, vertex: {project: p, location: l}}",
         "3:43: error AST217 vertex applies only to provider 'gemini', not 'openai'"),
        ("{provider: openai, modelId: m, mock: {reply: hi}}",
         "3:43: error AST217 mock options apply only to provider 'mock', not 'openai'"),
        ("{provider: mock, modelId: m, endpoint: 'http://x'}",
         "3:41: error AST217 provider 'mock' answers locally; endpoint does not apply"),
        ("{provider: ollama, modelId: m, credentials: passthrough}",
         "3:43: error AST217 provider 'ollama' does not use an API key here; passthrough does not apply"),
        ("{provider: gemini, modelId: m, credentials: passthrough, vertex: {project: p, location: l}}",
         "3:43: error AST217 provider 'gemini' does not use an API key here; passthrough does not apply"),
    ],
)
def test_options_that_do_not_apply(model: str, expected: str) -> None:
    assert lint_text(f"agents:\n  - id: a\n    model: {model}\n") == [expected]


def test_provider_section_options_that_do_not_apply() -> None:
    text = "providers:\n  bedrock: {apiKeyEnv: KEY}\n  openai: {vertex: {project: p, location: l}}\n" + (
        "agents:\n  - id: a\n    model: {provider: openai, modelId: m}\n"
    )
    assert lint_text(text) == [
        "2:13: error AST217 provider 'bedrock' takes no API key; apiKeyEnv does not apply",
        "3:12: error AST217 vertex applies only to provider 'gemini', not 'openai'",
    ]
