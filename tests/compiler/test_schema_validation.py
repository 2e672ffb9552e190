"""JSON Schema errors mapped to codes, messages and exact positions."""

from __future__ import annotations

from tests.compiler.helpers import lint_text

AGENT = "agents:\n  - id: a\n    model: {provider: openai, modelId: m}\n"


def test_unknown_key_with_suggestion_at_the_key() -> None:
    text = "agents:\n  - id: a\n    displayname: A\n    model: {provider: openai, modelId: m}\n"
    assert lint_text(text) == ["3:5: error AST101 unknown key 'displayname' in agents[0]; did you mean 'displayName'?"]


def test_unknown_key_lists_allowed_keys_when_nothing_is_close() -> None:
    assert lint_text("zzz: 1\n" + AGENT) == [
        "1:1: error AST101 unknown key 'zzz'; allowed keys: $schema, version, settings, providers, agents"
    ]


def test_each_unknown_key_is_reported() -> None:
    text = "settings:\n  retry: {maxRetry: 1, jiter: 0.1}\n" + AGENT
    assert lint_text(text) == [
        "2:11: error AST101 unknown key 'maxRetry' in settings.retry; did you mean 'maxRetries'?",
        "2:24: error AST101 unknown key 'jiter' in settings.retry; did you mean 'jitter'?",
    ]


def test_missing_key_points_at_the_mapping_key() -> None:
    assert lint_text("agents:\n  - id: a\n    model:\n      provider: openai\n") == [
        "3:5: error AST102 agents[0].model: missing required key 'modelId'"
    ]


def test_missing_agents_points_at_the_top() -> None:
    assert lint_text("version: 1\n") == ["1:1: error AST102 the top level: missing required key 'agents'"]


def test_list_agent_needs_an_id() -> None:
    assert lint_text("agents:\n  - model: {provider: openai, modelId: m}\n") == [
        "2:5: error AST102 agents[0]: missing required key 'id'"
    ]


def test_wrong_type_at_the_value() -> None:
    text = "settings:\n  listen:\n    port: '8080'\n" + AGENT
    assert lint_text(text) == ["3:11: error AST103 settings.listen.port: expected an integer, got a string '8080'"]


def test_boolean_is_not_an_integer() -> None:
    text = "settings:\n  requestTimeoutMs: true\n" + AGENT
    assert lint_text(text) == ["2:21: error AST103 settings.requestTimeoutMs: expected an integer, got a boolean True"]


def test_integral_floats_are_not_integers() -> None:
    text = "settings:\n  retry: {maxRetries: 2.0}\n" + AGENT
    assert lint_text(text) == ["2:23: error AST103 settings.retry.maxRetries: expected an integer, got a number 2.0"]


def test_empty_value_is_reported_at_its_key() -> None:
    assert lint_text("agents:\n  - id: a\n    model:\n") == [
        "3:5: error AST103 agents[0].model: expected a mapping, got nothing"
    ]


def test_agents_of_the_wrong_type_get_one_error() -> None:
    assert lint_text("agents: many\n") == ["1:9: error AST103 agents: expected a list or a mapping, got a string 'many'"]


def test_fallback_of_the_wrong_type_gets_one_error() -> None:
    text = "agents:\n  - id: a\n    model: {provider: openai, modelId: m, fallback: 3}\n"
    assert lint_text(text) == [
        "3:53: error AST103 agents[0].model.fallback: expected a mapping or a list, got an integer 3"
    ]


def test_fallback_naming_an_agent_takes_only_agent() -> None:
    text = "agents:\n  - id: a\n    model:\n      provider: openai\n      modelId: m\n      fallback: {agent: b, modelId: x}\n"
    assert lint_text(text) == [
        "6:28: error AST101 unknown key 'modelId' in agents[0].model.fallback; allowed keys: agent"
    ]


def test_version_must_be_one() -> None:
    assert lint_text("version: 2\n" + AGENT) == ["1:10: error AST104 version: 2 is not supported: must be 1"]


def test_enum_with_suggestion() -> None:
    text = "providers:\n  openai: {credentials: passthru}\n" + AGENT
    assert lint_text(text) == [
        "2:25: error AST104 providers.openai.credentials: 'passthru' is not one of: env, passthrough; "
        "did you mean 'passthrough'?"
    ]


def test_pattern_uses_a_readable_message() -> None:
    text = "settings:\n  inboundAuth: {tokenEnv: 9TOKEN}\n" + AGENT
    assert lint_text(text) == [
        "2:27: error AST104 settings.inboundAuth.tokenEnv: '9TOKEN' must be an environment variable name "
        "(letters, digits and _, not starting with a digit)"
    ]


def test_endpoint_must_be_http() -> None:
    text = "agents:\n  - id: a\n    model: {provider: vllm, modelId: m, endpoint: 'ftp://x'}\n"
    assert lint_text(text) == [
        "3:51: error AST104 agents[0].model.endpoint: 'ftp://x' must be an http:// or https:// URL"
    ]


def test_agent_key_pattern_in_mapping_form_points_at_the_key() -> None:
    text = "agents:\n  bad id:\n    model: {provider: openai, modelId: m}\n"
    assert lint_text(text) == [
        "2:3: error AST104 agents: key 'bad id' must start with a letter or digit and contain only letters, "
        "digits and . _ : @ -"
    ]


def test_header_name_pattern() -> None:
    text = "providers:\n  openrouter:\n    headers: {'X Title': a}\n" + AGENT
    assert lint_text(text) == [
        "3:15: error AST104 providers.openrouter.headers: key 'X Title' must be a valid HTTP header name"
    ]


def test_duplicate_list_item_points_at_the_repeat() -> None:
    text = "settings:\n  retry: {retryOn: [429, 503, 429]}\n" + AGENT
    assert lint_text(text) == ["2:31: error AST104 settings.retry.retryOn: 429 is listed more than once"]


def test_empty_list_and_string() -> None:
    text = "agents:\n  - id: a\n    displayName: ''\n    model: {provider: openai, modelId: m, fallback: []}\n"
    assert lint_text(text) == [
        "3:18: error AST104 agents[0].displayName: must not be empty",
        "4:53: error AST104 agents[0].model.fallback: must not be empty",
    ]


def test_number_out_of_range() -> None:
    text = "settings:\n  retry: {jitter: 1.5, maxRetries: -1}\n" + AGENT
    assert lint_text(text) == [
        "2:19: error AST105 settings.retry.jitter: 1.5 is out of range: must be at most 1",
        "2:36: error AST105 settings.retry.maxRetries: -1 is out of range: must be at least 0",
    ]


def test_schema_errors_stop_before_semantic_checks() -> None:
    text = "agents:\n  - id: a\n    model: {provider: opneai, modelId: m, temperature: 'hot'}\n"
    assert [line.split(" ")[2] for line in lint_text(text)] == ["AST103"]


def test_duplicate_keys_and_schema_errors_are_reported_together() -> None:
    text = "agents:\n  - id: a\n    model: {provider: openai, modelId: m}\n    tier: x\n    tier: y\n    nope: 1\n"
    assert lint_text(text) == [
        "5:5: error AST008 duplicate key 'tier' (first defined at line 4); the first one is used",
        "6:5: error AST101 unknown key 'nope' in agents[0]",
    ]
