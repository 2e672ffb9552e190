"""systemPrompt templates, checked at compile time: syntax (AST212), undefined variables (AST213).

They are checked in the sandbox the sidecar renders them in (`astra_sidecar.compiler.table.prompts`), against
the variables its `render_context` provides (`PROMPT_VARIABLES`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from astra_sidecar.compiler.table.prompts import make_environment

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


def _attribute_uses(found: list[nodes.Node]) -> Iterator[tuple[str, str, int]]:
    """(variable, attribute, line) for every `x.attr` and `x['attr']` among the template's nodes."""
    for node in found:
        if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name):
            yield node.node.name, node.attr, node.lineno
        elif isinstance(node, nodes.Getitem) and isinstance(node.node, nodes.Name):
            key = node.arg
            if isinstance(key, nodes.Const) and isinstance(key.value, str):
                yield node.node.name, key.value, node.lineno


@cache
def _checking_environment() -> SandboxedEnvironment:
    return make_environment()


def _unknown_filter_or_test(env: SandboxedEnvironment, found: list[nodes.Node]) -> TemplateSyntaxError | None:
    """Jinja2 defers unknown filters inside {% if %} to render time; the compiler does not."""
    for node in found:
        if isinstance(node, nodes.Filter | nodes.Test):
            kind, known = ("filter", env.filters) if isinstance(node, nodes.Filter) else ("test", env.tests)
            if node.name not in known:
                return TemplateSyntaxError(f"No {kind} named '{node.name}'.", node.lineno)
    return None


#: Template constructs that bind names; without them, every name the template reads is free.
_BINDINGS = (
    nodes.Assign,
    nodes.AssignBlock,
    nodes.For,
    nodes.Macro,
    nodes.CallBlock,
    nodes.With,
    nodes.Import,
    nodes.FromImport,
    nodes.Block,
)


def _free_names(env: SandboxedEnvironment, ast: nodes.Template, found: list[nodes.Node]) -> set[str]:
    """Names the template reads but neither defines nor gets from Jinja2's globals (range, dict…).

    jinja2.meta answers exactly but compiles the template; most prompts bind nothing, and then
    the loaded names are the answer (tests check both paths agree).
    """
    if any(isinstance(node, _BINDINGS) for node in found):
        free = set(meta.find_undeclared_variables(ast))
    else:
        free = {node.name for node in found if isinstance(node, nodes.Name) and node.ctx == "load"}
    return free - env.globals.keys()


@dataclass(frozen=True, slots=True)
class _Parsed:
    source: str
    found: list[nodes.Node]
    free: set[str]

    def first_use(self, name: str) -> int:
        return min((n.lineno for n in self.found if isinstance(n, nodes.Name) and n.name == name), default=1)


def _parse(source: str) -> _Parsed | TemplateProblem:
    env = _checking_environment()
    try:
        ast = env.parse(source)
        found = list(ast.find_all(nodes.Node))
        free = _free_names(env, ast, found)
        unknown = _unknown_filter_or_test(env, found)
        if unknown is not None:
            raise unknown
    except TemplateSyntaxError as exc:
        return TemplateProblem(exc.lineno, None, "AST212", f"systemPrompt template error: {exc.message}")
    return _Parsed(source, found, free)


def _undefined(parsed: _Parsed, prompt_vars: frozenset[str]) -> Iterator[TemplateProblem]:
    known = ", ".join(PROMPT_VARIABLES)
    for name in sorted(parsed.free - PROMPT_VARIABLES.keys()):
        line = parsed.first_use(name)
        message = f"systemPrompt uses undefined variable '{name}' (available: {known})"
        yield TemplateProblem(line, _column(parsed.source, line, name), "AST213", message)
    fields = {**_FIELDS, "vars": prompt_vars}
    for name, attr, line in _attribute_uses(parsed.found):
        if name in parsed.free and name in fields and attr not in fields[name]:
            has = ", ".join(sorted(fields[name])) or "none"
            message = f"systemPrompt uses undefined variable '{name}.{attr}' ({name} has: {has})"
            yield TemplateProblem(line, _column(parsed.source, line, attr), "AST213", message)


def check_template(source: str, prompt_vars: Collection[str]) -> tuple[TemplateProblem, ...]:
    """A syntax error (AST212), or unknown variables and fields (AST213), in template order."""
    return _check_template(source, frozenset(prompt_vars))


@cache
def _check_template(source: str, prompt_vars: frozenset[str]) -> tuple[TemplateProblem, ...]:
    parsed = _parse(source)
    if isinstance(parsed, TemplateProblem):
        return (parsed,)
    return tuple(sorted(_undefined(parsed, prompt_vars), key=lambda p: (p.line, p.col or 0, p.message)))
