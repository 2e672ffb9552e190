"""Embedding agents in the compiler: the checks (AST250 to AST253, exact positions), what the table
carries for them, and that chat tables are unchanged by it."""

from __future__ import annotations

import pytest

from astra_sidecar.compiler.providers import PROVIDERS
from astra_sidecar.compiler.table import EmbeddingRules, table_from_json
from tests.compiler.helpers import compile_text, lint_text

FAST = "settings:\n  timeouts: {attemptMs: 10000}\n"


def _agent(model: str, extra: str = "") -> str:
    return FAST + f"agents:\n  v:\n    model: {model}\n{extra}"


def test_every_provider_with_an_embeddings_api_compiles_to_its_format() -> None:
    formats = {}
    for provider in ("openai", "mistral", "ollama", "openrouter", "gemini"):
        table = compile_text(_agent(f"{{kind: embedding, provider: {provider}, modelId: e}}"))
        [cluster] = table["clusters"].values()
        formats[provider] = cluster["embedding"]["format"]
    assert formats == {p: "gemini" if p == "gemini" else "openai" for p in formats}
    assert {p for p, spec in PROVIDERS.items() if spec.embeddings} == {
        "openai", "mistral", "ollama", "openrouter", "vllm", "gemini", "bedrock",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("model_id", "fmt"),
    [("amazon.titan-embed-text-v2:0", "titan"), ("cohere.embed-english-v3", "cohere"),
     ("cohere.embed-multilingual-v3", "cohere")],
)  # fmt: skip
def test_bedrock_embedding_families(model_id: str, fmt: str) -> None:
    model = f"{{kind: embedding, provider: bedrock, region: us-east-1, modelId: '{model_id}'}}"
    table = compile_text(_agent(model))
    [cluster] = table["clusters"].values()
    assert cluster["embedding"] == {"format": fmt, "tokenInput": False, "dropParams": [], "renameParams": {}}


def test_the_table_carries_the_kind_and_the_rules() -> None:
    table = compile_text(_agent("{kind: embedding, provider: mistral, modelId: mistral-embed}"))
    assert table["agents"]["v"]["kind"] == "embedding"
    [cluster] = table["clusters"].values()
    assert cluster["embedding"] == {
        "format": "openai", "tokenInput": False, "dropParams": ["user"], "renameParams": {"dimensions": "output_dimension"},
    }  # fmt: skip
    loaded = table_from_json(table)
    assert loaded.agents["v"].kind == "embedding"
    [rules] = [c.embedding for c in loaded.clusters.values()]
    assert isinstance(rules, EmbeddingRules)
    assert (rules.format, rules.token_input, rules.drop_params, dict(rules.rename_params)) == (
        "openai", False, ("user",), {"dimensions": "output_dimension"},
    )  # fmt: skip


def test_chat_agents_carry_neither_kind_nor_rules() -> None:
    table = compile_text(_agent("{provider: openai, modelId: gpt-4o-mini}"))
    assert "kind" not in table["agents"]["v"]
    assert all("embedding" not in c for c in table["clusters"].values())
    assert table_from_json(table).agents["v"].kind == "chat"
    explicit = compile_text(_agent("{kind: chat, provider: openai, modelId: gpt-4o-mini}"))
    assert (explicit["agents"], explicit["clusters"]) == (table["agents"], table["clusters"])


def test_an_embedding_agent_on_claude() -> None:
    assert lint_text(_agent("{kind: embedding, provider: claude, modelId: c}")) == [
        "5:40: error AST250 provider 'claude' has no embeddings API; embedding agents can use "
        "bedrock, gemini, mistral, ollama, openai, openrouter, vllm"
    ]


def test_a_written_fallback_without_embeddings() -> None:
    model = "{kind: embedding, provider: openai, modelId: e, fallback: [{provider: groq, modelId: g}]}"
    assert lint_text(_agent(model)) == [
        "5:82: error AST250 provider 'groq' has no embeddings API; embedding agents can use "
        "bedrock, gemini, mistral, ollama, openai, openrouter, vllm"
    ]


def test_a_bedrock_chat_model_declared_as_embedding() -> None:
    model = "{kind: embedding, provider: bedrock, region: us-east-1, modelId: 'amazon.nova-lite-v1:0'}"
    assert lint_text(_agent(model)) == [
        "5:77: error AST253 'amazon.nova-lite-v1:0' is not an embedding model the sidecar calls on bedrock "
        "(amazon.titan-embed-text…, cohere.embed-…)"
    ]


def test_fallback_agents_of_the_other_kind_both_ways() -> None:
    text = (
        FAST + "agents:\n"
        "  chat:\n    model: {provider: openai, modelId: m, fallback: {agent: vec}}\n"
        "  vec:\n    model: {kind: embedding, provider: openai, modelId: e, fallback: {agent: chat}}\n"
    )
    assert lint_text(text) == [
        "5:61: error AST251 fallback agent 'vec' is an embedding agent; 'chat' is a chat agent",
        "7:78: error AST251 fallback agent 'chat' is a chat agent; 'vec' is an embedding agent",
    ]


def test_chat_only_settings_are_named_at_their_keys() -> None:
    model = "\n      ".join(
        [
            "",
            "kind: embedding",
            "provider: openai",
            "modelId: e",
            "temperature: 0.5",
            "reasoning: {effort: low}",
        ]
    )
    extra = "    promptCache: {systemPrompt: true}\n    promptVars: {a: b}\n"
    assert lint_text(_agent(model, extra)) == [
        "9:7: error AST252 model.temperature applies to chat agents only; embedding agent 'v' never uses it",
        "10:7: error AST252 model.reasoning applies to chat agents only; embedding agent 'v' never uses it",
        "11:5: error AST252 promptCache applies to chat agents only; embedding agent 'v' never uses it",
        "12:5: error AST252 promptVars applies to chat agents only; embedding agent 'v' never uses it",
    ]


def test_an_unknown_kind_is_a_schema_error() -> None:
    [problem] = lint_text(_agent("{kind: vectors, provider: openai, modelId: e}"))
    assert problem.startswith("5:19: error AST104 ")
