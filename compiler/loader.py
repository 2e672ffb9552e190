"""The compile pipeline, and the one entry point the sidecar uses to get a routing table.

Stages, each run only when the ones before found no errors: YAML with positions → JSON Schema →
document checks → build (clusters, plans) → table checks. Warnings never stop the pipeline.
One exception, so `astra lint` reports every independent mistake in one run: when the schema's
errors all lie inside agents, the document checks still run on the agents that passed it.

`--check-env` (an `env` given) also warns (AST215) when a Vertex AI cluster meets an install
without google-auth, the `vertex` extra the sidecar needs for it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from astra_sidecar.compiler.diagnostics import Diagnostic, format_text, has_errors
from astra_sidecar.compiler.schemas import TABLE_SCHEMA, validator
from astra_sidecar.compiler.table import Json, RoutingTable, TableLoadError, content_hash, table_from_json
from astra_sidecar.compiler.yamlpos import ORIGIN, YamlDocument, dotted, load_bytes, load_text, read_source

if TYPE_CHECKING:
    from astra_sidecar.compiler.build import Origins
    from astra_sidecar.compiler.config import Config

#: The sidecar's switch turning every Gemini cluster into a Vertex AI one (sidecar/auth/google.py).
VERTEX_SWITCH = "ASTRA_GEMINI_VERTEX_AI_ENABLED"


class CompileError(TableLoadError):
    """The input could not be turned into a routing table; `diagnostics` says why and where.

    Its `reasons` (what the sidecar logs) are the diagnostics as text, its message the errors.
    """

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(sorted(diagnostics))
        errors = [d for d in self.diagnostics if d.is_error] or list(self.diagnostics)
        super().__init__([str(d) for d in self.diagnostics], format_text(errors).rstrip("\n"))


@dataclass(frozen=True, slots=True)
class CompileResult:
    """The table JSON (None when there are errors) and every diagnostic, sorted."""

    table: Json | None
    diagnostics: tuple[Diagnostic, ...]


def _pipeline(
    doc: YamlDocument, raw: bytes, env: Mapping[str, str] | None, found: list[Diagnostic]
) -> Json | None:
    """Run the stages after loading, appending to `found`; the table only when nothing is an error.

    The stages are imported here: `astra serve` of a compiled table never loads them."""
    from astra_sidecar.compiler.build import build_table
    from astra_sidecar.compiler.config import read_config
    from astra_sidecar.compiler.semantic import check_config
    from astra_sidecar.compiler.tablecheck import check_env, check_table
    from astra_sidecar.compiler.validate import validate_parts

    schema = validate_parts(doc)
    found += schema.diagnostics
    if has_errors(found):
        if schema.invalid_agents is not None:
            found += check_config(_config_without(doc, schema.invalid_agents))
        return None
    config = read_config(doc)
    found += check_config(config)
    if has_errors(found):
        return None
    built = build_table(config, hashlib.sha256(raw).hexdigest())
    found += built.diagnostics
    if has_errors(found):
        return None
    frozen = table_from_json(built.table)
    found += check_table(doc, frozen, built.origins)
    if env is not None:
        found += check_env(doc, frozen, built.origins, env)
        found += _vertex_extra(doc, frozen, built.origins, env)
    return None if has_errors(found) else built.table


def _config_without(doc: YamlDocument, invalid: frozenset[str | int]) -> Config:
    """The typed view of the agents that passed the schema (settings and providers did)."""
    from astra_sidecar.compiler.config import Config
    from astra_sidecar.compiler.config import _agent as read_agent

    raw = doc.data["agents"]
    if isinstance(raw, dict):
        kept = [(("agents", k), k, doc.key_pos(("agents", k)), b) for k, b in raw.items() if k not in invalid]
    else:
        kept = [
            (("agents", i), b["id"], doc.value_pos(("agents", i, "id")), b)
            for i, b in enumerate(raw)
            if i not in invalid
        ]
    agents = tuple(read_agent(*entry) for entry in kept)
    return Config(doc, doc.data.get("settings", {}), doc.data.get("providers", {}), agents)


def _vertex_extra(
    doc: YamlDocument, table: RoutingTable, origins: Origins, env: Mapping[str, str]
) -> list[Diagnostic]:
    """AST215 once when a Gemini cluster will use Vertex AI but google-auth (the extra) is missing."""
    if _has_google_auth():
        return []
    switched_on = env.get(VERTEX_SWITCH, "").strip().lower() in {"1", "true", "yes", "on"}
    for key, path in origins.clusters.items():
        cluster = table.clusters[key]
        if cluster.wire == "gemini" and (cluster.vertex is not None or switched_on):
            message = (
                f"cluster {key} uses Vertex AI, which needs google-auth: pip install 'astra-sidecar[vertex]'"
            )
            return [doc.diag(doc.value_pos((*path, "provider")), "AST215", message)]
    return []


def _has_google_auth() -> bool:
    try:
        return importlib.util.find_spec("google.auth") is not None
    except ModuleNotFoundError:  # no `google` namespace at all
        return False


def compile_source(raw: bytes, name: str, *, env: Mapping[str, str] | None = None) -> CompileResult:
    """Compile astra.yml bytes. `env`, when given, turns on the credential-variable check."""
    loaded = load_bytes(raw, name)
    found = list(loaded.diagnostics)
    table = _pipeline(loaded.document, raw, env, found) if loaded.document else None
    return CompileResult(table, tuple(sorted(found)))


def compile_file(path: str, *, env: Mapping[str, str] | None = None) -> tuple[Json | None, list[Diagnostic]]:
    """Compile the astra.yml at `path`: (table JSON or None, sorted diagnostics)."""
    raw, problems = read_source(path)
    if raw is None:
        return None, list(problems)
    result = compile_source(raw, path, env=env)
    return result.table, list(result.diagnostics)


# --- reading a compiled table -------------------------------------------------------------------


def as_table_json(raw: bytes) -> Json | None:
    """The parsed JSON when `raw` is a routing-table file (an object with schemaVersion), else None."""
    if not raw.lstrip().startswith(b"{"):
        return None
    try:
        data: Any = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) and "schemaVersion" in data else None


def _table_problems(data: Json) -> list[tuple[tuple[str | int, ...], str, str]]:
    """(path, code, message) for schema violations, unknown plan keys and a wrong hash."""
    problems = [
        (tuple(e.absolute_path), "AST301", e.message) for e in validator(TABLE_SCHEMA).iter_errors(data)
    ]
    if problems:
        return problems
    for agent_id, agent in data["agents"].items():
        for index, key in enumerate(agent["plan"]):
            if key not in data["clusters"]:
                problems.append((("agents", agent_id, "plan", index), "AST301", f"unknown cluster '{key}'"))
        limits = agent.get("planLimits")
        if limits is not None and len(limits) != len(agent["plan"]):
            message = f"{len(limits)} planLimits for {len(agent['plan'])} plan entries"
            problems.append((("agents", agent_id, "planLimits"), "AST301", message))
    if content_hash(data) != data["hash"]:
        problems.append(
            (("hash",), "AST302", "the table's content does not match its hash (edited by hand?)")
        )
    return problems


def read_table_json(raw: bytes, data: Json, name: str) -> Json:
    """Check a routing-table document; raises CompileError with positioned diagnostics."""
    problems = _table_problems(data)
    if not problems:
        return data
    doc = load_text(raw.decode("utf-8", "replace"), name).document
    diagnostics = []
    for path, code, message in problems:
        pos = doc.value_pos(path) if doc else ORIGIN
        diagnostics.append(Diagnostic(name, pos.line, pos.col, code, f"{dotted(path)}: {message}"))
    raise CompileError(diagnostics)


def load_routing_table(path: str) -> RoutingTable:
    """The frozen table from an astra.yml (compiled now) or a compiled routing-table JSON file.

    Raises CompileError (with diagnostics) when the file cannot be read or has errors.
    """
    return table_from_json(load_table_json(path))


def load_table_json(path: str) -> Json:
    """The routing-table document of an astra.yml (compiled now) or a compiled routing-table JSON
    file, checked; what `astra serve`'s compiler process hands the sidecar (`astra_sidecar.table_child`).

    Raises CompileError (with diagnostics) when the file cannot be read or has errors.
    """
    raw, problems = read_source(path)
    if raw is None:
        raise CompileError(problems)
    data = as_table_json(raw)
    if data is not None:
        return read_table_json(raw, data, path)
    result = compile_source(raw, path)
    if result.table is None:
        raise CompileError(result.diagnostics)
    return result.table
