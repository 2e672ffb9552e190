"""Embedding agents (`model.kind: embedding`): their checks, and what their clusters carry.

- AST250: a target (the primary or a written fallback) on a provider without an embeddings API;
- AST251: a fallback `{agent: ID}` naming an agent of the other kind;
- AST252: a chat-only setting on an embedding agent (it would never apply);
- AST253: a Bedrock model that is none of the embedding families the sidecar can call.

A cluster of an embedding agent carries `embedding` (the request format, whether token arrays are
accepted, the fields dropped or renamed), resolved here from `compiler/providers.py`.
"""

from __future__ import annotations

from collections.abc import Iterator

from astra_sidecar.compiler.config import AgentConfig, AgentRef, Config, Target
from astra_sidecar.compiler.diagnostics import Diagnostic
from astra_sidecar.compiler.providers import PROVIDERS, ProviderSpec, canonical_provider
from astra_sidecar.compiler.table import Json

EMBEDDING = "embedding"

#: Agent settings that only mean something for chat, by their path under the agent.
CHAT_ONLY = (
    ("systemPrompt",),
    ("promptVars",),
    ("tools",),
    ("promptCache",),
    ("model", "temperature"),
    ("model", "maxOutputTokens"),
    ("model", "reasoning"),
)


def agent_kind(agent: AgentConfig) -> str:
    kind = agent.model.get("kind", "chat")
    return kind if isinstance(kind, str) else "chat"


def _spec(target: Target) -> ProviderSpec | None:
    provider = canonical_provider(target.provider)
    return PROVIDERS[provider] if provider is not None else None


def embedding_json(agent: AgentConfig, target: Target) -> Json:
    """`{"embedding": rules}` for a cluster of an embedding agent, else {} (chat tables keep their hash)."""
    spec = _spec(target)
    if agent_kind(agent) != EMBEDDING or spec is None or spec.embeddings is None:
        return {}
    api = spec.embeddings
    fmt = api.format_for(target.model_id)
    if fmt is None:
        return {}
    rules = {
        "format": fmt,
        "tokenInput": api.token_input,
        "dropParams": list(api.drop_params),
        "renameParams": dict(api.rename_params),
    }
    return {"embedding": rules}


def _with_embeddings() -> str:
    return ", ".join(sorted(p for p, spec in PROVIDERS.items() if spec.embeddings is not None))


def _target(config: Config, target: Target) -> Iterator[Diagnostic]:
    spec = _spec(target)
    if spec is None:
        return  # AST202 says so
    doc = config.doc
    if spec.embeddings is None:
        message = f"provider '{spec.id}' has no embeddings API; embedding agents can use {_with_embeddings()}"
        yield doc.diag(doc.value_pos(target.provider_path), "AST250", message)
    elif spec.embeddings.format_for(target.model_id) is None:
        families = ", ".join(f"{fragment}…" for fragment, _ in spec.embeddings.families)
        message = f"'{target.model_id}' is not an embedding model the sidecar calls on {spec.id} ({families})"
        yield doc.diag(doc.value_pos((*target.path, "modelId")), "AST253", message)


def _chat_settings(config: Config, agent: AgentConfig) -> Iterator[Diagnostic]:
    doc = config.doc
    for path in CHAT_ONLY:
        holder = agent.body if len(path) == 1 else agent.model
        if path[-1] in holder:
            where = (*agent.path, *path)
            message = (
                f"{'.'.join(path)} applies to chat agents only; embedding agent '{agent.id}' never uses it"
            )
            yield doc.diag(doc.key_pos(where), "AST252", message)


def _fallback_kinds(config: Config, agent: AgentConfig, kinds: dict[str, str]) -> Iterator[Diagnostic]:
    own = agent_kind(agent)
    for fallback in agent.fallbacks:
        if isinstance(fallback, AgentRef) and fallback.agent_id in kinds and kinds[fallback.agent_id] != own:
            other = kinds[fallback.agent_id]
            message = (
                f"fallback agent '{fallback.agent_id}' is {_article(other)} agent; "
                f"'{agent.id}' is {_article(own)} agent"
            )
            yield config.doc.diag(config.doc.value_pos((*fallback.path, "agent")), "AST251", message)


def _article(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"


def check_embeddings(config: Config) -> list[Diagnostic]:
    """Every embedding-agent problem of the document, in no particular order."""
    kinds = {agent.id: agent_kind(agent) for agent in config.agents}
    found: list[Diagnostic] = []
    for agent in config.agents:
        found.extend(_fallback_kinds(config, agent, kinds))
        if agent_kind(agent) != EMBEDDING:
            continue
        found.extend(_chat_settings(config, agent))
        for target in (agent.primary, *agent.fallbacks):
            if isinstance(target, Target):
                found.extend(_target(config, target))
    return found
