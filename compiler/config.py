"""A schema-valid astra.yml read into typed pieces, both agent forms normalised to one list.

Every piece keeps its YAML path so later checks can point at the exact line and column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from astra_sidecar.compiler.providers import canonical_provider
from astra_sidecar.compiler.yamlpos import Path, Pos, YamlDocument


@dataclass(frozen=True, slots=True)
class Target:
    """One provider model to call: the primary, or a fallback written as {provider, modelId, …}."""

    path: Path
    provider: str
    model_id: str
    endpoint: str | None
    region: str | None
    vertex: Mapping[str, Any] | None
    credentials: str | None
    capabilities: Mapping[str, bool]
    mock: Mapping[str, Any] | None
    options: Mapping[str, Any]

    @property
    def provider_path(self) -> Path:
        return (*self.path, "provider")


@dataclass(frozen=True, slots=True)
class AgentRef:
    """A fallback written as {agent: ID}: the other agent's whole plan."""

    path: Path
    agent_id: str


@dataclass(frozen=True, slots=True)
class AgentConfig:
    id: str
    path: Path
    name_pos: Pos
    body: Mapping[str, Any]
    primary: Target
    fallbacks: tuple[Target | AgentRef, ...]

    @property
    def model(self) -> Mapping[str, Any]:
        model: Mapping[str, Any] = self.body["model"]
        return model


@dataclass(frozen=True, slots=True)
class Config:
    doc: YamlDocument
    settings: Mapping[str, Any]
    providers: Mapping[str, Any]
    agents: tuple[AgentConfig, ...]

    def provider_settings(self, provider: str) -> Mapping[str, Any]:
        """The `providers:` entry for canonical id `provider` (aliases match), or {}."""
        for key, value in self.providers.items():
            if canonical_provider(key) == provider:
                found: Mapping[str, Any] = value
                return found
        return {}


def _target(path: Path, d: Mapping[str, Any]) -> Target:
    return Target(
        path=path,
        provider=d["provider"],
        model_id=d["modelId"],
        endpoint=d.get("endpoint"),
        region=d.get("region"),
        vertex=d.get("vertex"),
        credentials=d.get("credentials"),
        capabilities=d.get("capabilities", {}),
        mock=d.get("mock"),
        options=d,
    )


def _fallbacks(model_path: Path, model: Mapping[str, Any]) -> tuple[Target | AgentRef, ...]:
    raw = model.get("fallback")
    path: Path = (*model_path, "fallback")
    if raw is None:
        return ()
    entries = [(path, raw)] if isinstance(raw, dict) else [((*path, i), e) for i, e in enumerate(raw)]
    return tuple(AgentRef(p, e["agent"]) if "agent" in e else _target(p, e) for p, e in entries)


def _agent(path: Path, agent_id: str, name_pos: Pos, body: Mapping[str, Any]) -> AgentConfig:
    model_path: Path = (*path, "model")
    return AgentConfig(
        id=agent_id,
        path=path,
        name_pos=name_pos,
        body=body,
        primary=_target(model_path, body["model"]),
        fallbacks=_fallbacks(model_path, body["model"]),
    )


def read_config(doc: YamlDocument) -> Config:
    """Typed view of a document that passed schema validation."""
    data = doc.data
    raw_agents = data["agents"]
    if isinstance(raw_agents, list):
        agents = tuple(
            _agent(("agents", i), body["id"], doc.value_pos(("agents", i, "id")), body)
            for i, body in enumerate(raw_agents)
        )
    else:
        agents = tuple(
            _agent(("agents", key), key, doc.key_pos(("agents", key)), body)
            for key, body in raw_agents.items()
        )
    return Config(doc, data.get("settings", {}), data.get("providers", {}), agents)
