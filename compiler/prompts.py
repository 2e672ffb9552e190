"""systemPrompt templates: one sandboxed Jinja2 environment shared by the compiler and the sidecar.

The compiler checks templates (syntax, undefined variables); the sidecar renders them per attempt
with `render_context`, so `model` names the cluster actually serving that attempt (a fallback
sees its own provider and model).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from types import MappingProxyType
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from compiler.table import Agent, Cluster

#: The variables a systemPrompt can use, with what they hold.
PROMPT_VARIABLES: MappingProxyType[str, str] = MappingProxyType(
    {
        "agent": "the agent: agent.id, agent.displayName, agent.tier (null when unset)",
        "model": "the model serving this attempt: model.provider, model.modelId",
        "vars": "the agent's promptVars mapping: vars.NAME",
        "date": "today's date in UTC, YYYY-MM-DD",
        "now": "the current UTC time, ISO-8601 to the second (2025-01-31T09:30:00Z)",
    }
)

#: Attributes of the structured variables (`vars` takes the agent's promptVars keys).
_FIELDS: MappingProxyType[str, frozenset[str]] = MappingProxyType(
    {"agent": frozenset({"id", "displayName", "tier"}), "model": frozenset({"provider", "modelId"})}
)


def make_environment() -> SandboxedEnvironment:
    """The sandbox every systemPrompt is compiled and rendered in: undefined names fail loudly."""
    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def render_context(agent: Agent, cluster: Cluster, now: datetime) -> dict[str, Any]:
    """The template variables for one attempt of `agent` on `cluster` at `now` (naive means UTC)."""
    utc = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    return {
        "agent": {"id": agent.id, "displayName": agent.display_name, "tier": agent.tier},
        "model": {"provider": cluster.provider, "modelId": cluster.model_id},
        "vars": dict(agent.prompt_vars),
        "date": utc.strftime("%Y-%m-%d"),
        "now": utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """A problem at `line` (1-based, in the template) and `col` (1-based, or None when unknown)."""

    line: int
    col: int | None
    code: str
    message: str


def _column(source: str, line: int, word: str) -> int | None:
    """1-based column of `word` on template line `line`, looking inside the first tag if any."""
    lines = source.splitlines()
    if not 0 < line <= len(lines):
        return None
    text = lines[line - 1]
    tags = [i for i in (text.find("{{"), text.find("{%")) if i >= 0]
    found = re.compile(rf"\b{re.escape(word)}\b").search(text, min(tags, default=0))
    return found.start() + 1 if found else None


def _attribute_uses(ast: nodes.Template) -> Iterator[tuple[str, str, int]]:
    """(variable, attribute, line) for every `x.attr` and `x['attr']` in the template."""
    for node in ast.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name):
            yield node.node.name, node.attr, node.lineno
    for item in ast.find_all(nodes.Getitem):
        key = item.arg
        if isinstance(item.node, nodes.Name) and isinstance(key, nodes.Const) and isinstance(key.value, str):
            yield item.node.name, key.value, item.lineno


def _first_use(ast: nodes.Template, name: str) -> int:
    return min((n.lineno for n in ast.find_all(nodes.Name) if n.name == name), default=1)


@cache
def _checking_environment() -> SandboxedEnvironment:
    return make_environment()


def _unknown_filter_or_test(env: SandboxedEnvironment, ast: nodes.Template) -> TemplateSyntaxError | None:
    """Jinja2 defers unknown filters inside {% if %} to render time; the compiler does not."""
    for node in ast.find_all((nodes.Filter, nodes.Test)):
        kind, known = ("filter", env.filters) if isinstance(node, nodes.Filter) else ("test", env.tests)
        if node.name not in known:
            return TemplateSyntaxError(f"No {kind} named '{node.name}'.", node.lineno)
    return None


def check_template(source: str, prompt_vars: Collection[str]) -> tuple[TemplateProblem, ...]:
    """Syntax errors (AST212), then unknown variables and fields (AST213), in template order."""
    return _check_template(source, frozenset(prompt_vars))


@cache
def _check_template(source: str, prompt_vars: frozenset[str]) -> tuple[TemplateProblem, ...]:
    env = _checking_environment()
    try:
        ast = env.parse(source)
        free = meta.find_undeclared_variables(ast)  # also fails on unknown filters and tests
        unknown = _unknown_filter_or_test(env, ast)
        if unknown is not None:
            raise unknown
    except TemplateSyntaxError as exc:
        return (TemplateProblem(exc.lineno, None, "AST212", f"systemPrompt template error: {exc.message}"),)
    problems = []
    for name in sorted(free - PROMPT_VARIABLES.keys()):
        line = _first_use(ast, name)
        known = ", ".join(PROMPT_VARIABLES)
        message = f"systemPrompt uses undefined variable '{name}' (available: {known})"
        problems.append(TemplateProblem(line, _column(source, line, name), "AST213", message))
    fields = {**_FIELDS, "vars": frozenset(prompt_vars)}
    for name, attr, line in _attribute_uses(ast):
        if name in free and name in fields and attr not in fields[name]:
            known = ", ".join(sorted(fields[name])) or "none"
            message = f"systemPrompt uses undefined variable '{name}.{attr}' ({name} has: {known})"
            problems.append(TemplateProblem(line, _column(source, line, attr), "AST213", message))
    return tuple(sorted(problems, key=lambda p: (p.line, p.col or 0, p.message)))
