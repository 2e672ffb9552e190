"""The prompt sandbox (astra_sidecar.compiler.table.prompts: environment, render context) and the template checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from astra_sidecar.compiler.prompts import PROMPT_VARIABLES, TemplateProblem, _free_names, check_template
from astra_sidecar.compiler.table import table_from_json
from astra_sidecar.compiler.table.prompts import make_environment, render_context
from tests.compiler.helpers import compile_text

CONFIG = (
    "settings:\n  timeouts: {attemptMs: 1000}\n"
    "agents:\n  - id: support\n    displayName: Support\n    tier: pro\n"
    "    model: {provider: openai, modelId: gpt-x, fallback: {provider: claude, modelId: c}}\n"
    "    promptVars: {company: ACME}\n"
    "    systemPrompt: '{{ agent.displayName }} of {{ vars.company }} on {{ model.provider }}/{{ model.modelId }}, {{ date }} {{ now }}'\n"
)


def test_environment_is_a_strict_sandbox_without_autoescape() -> None:
    env = make_environment()
    assert isinstance(env, SandboxedEnvironment)
    assert env.from_string("{{ x }}").render(x="<b>") == "<b>"
    with pytest.raises(UndefinedError):
        env.from_string("{{ missing }}").render()
    with pytest.raises(SecurityError):
        env.from_string("{{ x.__class__.__mro__ }}").render(x="")


def test_render_context_uses_the_serving_cluster_and_utc() -> None:
    table = table_from_json(compile_text(CONFIG))
    agent = table.agents["support"]
    primary, fallback = table.cluster_plan(agent)
    moment = datetime(2025, 1, 31, 23, 30, 5, 123, tzinfo=timezone(timedelta(hours=-2)))
    context = render_context(agent, fallback, moment)
    assert context == {
        "agent": {"id": "support", "displayName": "Support", "tier": "pro"},
        "model": {"provider": "claude", "modelId": "c"},
        "vars": {"company": "ACME"},
        "date": "2025-02-01",
        "now": "2025-02-01T01:30:05Z",
    }
    assert set(context) == set(PROMPT_VARIABLES)
    rendered = make_environment().from_string(agent.system_prompt or "").render(render_context(agent, primary, moment))
    assert rendered == "Support of ACME on openai/gpt-x, 2025-02-01 2025-02-01T01:30:05Z"


def test_naive_datetimes_are_taken_as_utc() -> None:
    table = table_from_json(compile_text(CONFIG))
    agent = table.agents["support"]
    naive = render_context(agent, table.cluster_plan(agent)[0], datetime(2025, 3, 1, 8, 0, 0))
    aware = render_context(agent, table.cluster_plan(agent)[0], datetime(2025, 3, 1, 8, 0, 0, tzinfo=UTC))
    assert naive == aware


def test_check_template_reports_syntax_with_template_line() -> None:
    assert check_template("a\nb {{ x.y( }}\n", []) == (
        TemplateProblem(2, None, "AST212", "systemPrompt template error: unexpected '}', expected ')'"),
    )


def test_check_template_accepts_every_documented_variable() -> None:
    source = "{{ agent.id }}{{ agent.tier }}{{ model.provider }}{{ vars.k }}{{ date }}{{ now }}{{ vars['k'] }}"
    assert check_template(source, ["k"]) == ()


def test_check_template_flags_subscripted_unknown_vars() -> None:
    assert check_template("{{ vars['nope'] }}", ["k"]) == (
        TemplateProblem(1, 10, "AST213", "systemPrompt uses undefined variable 'vars.nope' (vars has: k)"),
    )


def test_jinja_globals_are_not_undefined() -> None:
    assert check_template("{% for i in range(3) %}{{ i }}{% endfor %}{{ dict(a=1) }}{{ namespace() }}", []) == ()


def test_unknown_test_is_a_syntax_problem() -> None:
    assert check_template("{{ date is shiny }}", []) == (
        TemplateProblem(1, None, "AST212", "systemPrompt template error: No test named 'shiny'."),
    )


TOKENS = ["{{ a }}", "{{ b.c }}", "{% set a = 1 %}", "{% for b in a %}", "{% endfor %}", "{% if c %}", "{% endif %}",
          "{{ d | upper }}", "{% macro m(x) %}{{ x }}{{ e }}{% endmacro %}", "{{ loop }}", "{{ range(2) }}", "text",
          "{% with f = 2 %}{{ f }}{{ g }}{% endwith %}", "{{ vars['h'] }}"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=8).map("".join))
def test_fast_free_names_agree_with_jinja_meta(source: str) -> None:
    env = make_environment()
    try:
        ast = env.parse(source)
        expected = meta.find_undeclared_variables(ast) - env.globals.keys()
    except TemplateSyntaxError:
        return
    assert _free_names(env, ast, list(ast.find_all(nodes.Node))) == expected
