"""`astra diff OLD NEW`: agents added, removed and changed (route, limits, policy), settings, the
text and JSON outputs, git revisions, and the exit status (0 same, 1 changes, 2 trouble)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from astra_sidecar.cli import main as astra_main
from astra_sidecar.compiler import diff
from astra_sidecar.compiler.loader import compile_file
from astra_sidecar.compiler.table import dump_table_json

BASE = """\
version: 1
settings:
  drainGraceMs: 10000
agents:
  - id: support
    model:
      provider: openai
      modelId: gpt-4o-mini
      maxContextTokens: 128000
      maxOutputTokens: 2048
      temperature: 0.3
      fallback:
        - {provider: claude, modelId: claude-3-5-haiku-latest}
        - {provider: gemini, modelId: gemini-2.0-flash}
    systemPrompt: "You help customers."
    tools: {allow: [lookup_order]}
    retry: {maxRetries: 1}
  - id: private
    model:
      provider: vllm
      modelId: qwen
      endpoint: http://vllm.internal:8000/v1
  - id: demo
    model: {provider: mock, modelId: echo}
"""

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """`astra diff ARGS…` through astra_sidecar.compiler.diff.main: (exit status, stdout, stderr)."""

    def go(*argv: str) -> tuple[int, str, str]:
        status = diff.main(list(argv))
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return go


@pytest.fixture
def configs(tmp_path: Path) -> Callable[..., tuple[str, str]]:
    """Write BASE as old.yml and BASE with each (old, new) text replacement as new.yml."""

    def write(*replacements: tuple[str, str], base: str = BASE) -> tuple[str, str]:
        new = base
        for before, after in replacements:
            assert before in new, before
            new = new.replace(before, after)
        (tmp_path / "old.yml").write_text(base)
        (tmp_path / "new.yml").write_text(new)
        return str(tmp_path / "old.yml"), str(tmp_path / "new.yml")

    return write


def _changes(run: Run, old: str, new: str) -> dict[str, list[tuple[str, str, Any, Any]]]:
    status, out, err = run(old, new, "--format", "json")
    assert status == 1, err
    report = json.loads(out)
    return {a["agent"]: [(c["field"], c["category"], c["old"], c["new"]) for c in a["changes"]]
            for a in report["agents"]["changed"]}


def test_identical_configs_exit_0(run: Run, configs: Callable[..., tuple[str, str]]) -> None:
    old, new = configs()
    status, out, err = run(old, new)
    assert (status, err) == (0, "")
    assert out.splitlines()[-1] == "no route changes (identical tables)"


def test_comments_and_formatting_are_no_route_change(run: Run, configs: Callable[..., tuple[str, str]]) -> None:
    old, new = configs(("version: 1\n", "# edited by hand\nversion: 1\n"), ("modelId: qwen", "modelId: 'qwen'"))
    status, out, _ = run(old, new)
    assert status == 0
    assert out.splitlines()[-1] == "no route changes (only the source text differs, e.g. comments or formatting)"


def test_added_and_removed_agents(run: Run, configs: Callable[..., tuple[str, str]]) -> None:
    old, new = configs(
        ("  - id: demo\n    model: {provider: mock, modelId: echo}\n",
         "  - id: billing\n    model:\n      provider: mistral\n      modelId: mistral-large-latest\n"
         "      fallback: {provider: groq, modelId: llama-3.3-70b-versatile}\n"),
    )
    status, out, _ = run(old, new)
    assert status == 1
    assert "agents: 1 added, 1 removed, 0 changed" in out
    assert ("+ billing: mistral mistral-large-latest (https://api.mistral.ai/v1); "
            "fallbacks: groq:llama-3.3-70b-versatile") in out.splitlines()
    assert "- demo: mock echo (mock://local)" in out.splitlines()
    report = json.loads(run(old, new, "--format", "json")[1])
    assert report["agents"]["added"] == [{
        "agent": "billing", "provider": "mistral", "model": "mistral-large-latest",
        "endpoint": "https://api.mistral.ai/v1", "fallbacks": ["groq:llama-3.3-70b-versatile"],
    }]
    assert [a["agent"] for a in report["agents"]["removed"]] == ["demo"]


def test_provider_model_and_endpoint_changes(run: Run, configs: Callable[..., tuple[str, str]]) -> None:
    old, new = configs(
        ("provider: openai\n      modelId: gpt-4o-mini", "provider: mistral\n      modelId: mistral-small-latest"),
        ("http://vllm.internal:8000/v1", "http://vllm.internal:9000/v1"),
    )
    changes = _changes(run, old, new)
    assert changes["private"] == [
        ("endpoint", "route", "http://vllm.internal:8000/v1", "http://vllm.internal:9000/v1"),
    ]
    assert changes["support"][:3] == [
        ("provider", "route", "openai", "mistral"),
        ("model", "route", "gpt-4o-mini", "mistral-small-latest"),
        ("endpoint", "route", "https://api.openai.com/v1", "https://api.mistral.ai/v1"),
    ]
    assert ("primary.credentials.env", "other", "OPENAI_API_KEY", "MISTRAL_API_KEY") in changes["support"]


def test_a_reordered_fallback_chain(run: Run, configs: Callable[..., tuple[str, str]]) -> None:
    old, new = configs((
        "        - {provider: claude, modelId: claude-3-5-haiku-latest}\n"
        "        - {provider: gemini, modelId: gemini-2.0-flash}\n",
        "        - {provider: gemini, modelId: gemini-2.0-flash}\n"
        "        - {provider: claude, modelId: claude-3-5-haiku-latest}\n",
    ))
    assert _changes(run, old, new) == {"support": [(
        "fallbacks", "route",
        ["claude:claude-3-5-haiku-latest", "gemini:gemini-2.0-flash"],
        ["gemini:gemini-2.0-flash", "claude:claude-3-5-haiku-latest"],
    )]}
    out = run(old, new)[1]
    assert ("    fallbacks  claude:claude-3-5-haiku-latest, gemini:gemini-2.0-flash → "
            "gemini:gemini-2.0-flash, claude:claude-3-5-haiku-latest (reordered)") in out.splitlines()


def test_a_fallback_removed_and_its_endpoint_changed(run: Run, configs: Callable[..., tuple[str, str]]) -> None:
    old, new = configs((
        "        - {provider: gemini, modelId: gemini-2.0-flash}\n", ""),
        ("{provider: claude, modelId: claude-3-5-haiku-latest}",
         "{provider: claude, modelId: claude-3-5-haiku-latest, endpoint: 'https://proxy.example/anthropic'}"),
    )
    assert _changes(run, old, new)["support"] == [
        ("fallbacks", "route", ["claude:claude-3-5-haiku-latest", "gemini:gemini-2.0-flash"],
         ["claude:claude-3-5-haiku-latest"]),
        ("fallback[claude:claude-3-5-haiku-latest].endpoint", "route", "https://api.anthropic.com",
         "https://proxy.example/anthropic"),
    ]


def test_limit_changes(run: Run, configs: Callable[..., tuple[str, str]]) -> None:
    old, new = configs(("maxContextTokens: 128000", "maxContextTokens: 64000"),
                       ("maxOutputTokens: 2048", "maxOutputTokens: 4096"),
                       ("temperature: 0.3", "temperature: 0.7"))
    assert _changes(run, old, new) == {"support": [
        ("maxContextTokens", "limits", 128000, 64000),
        ("maxOutputTokens", "limits", 2048, 4096),
        ("temperature", "limits", 0.3, 0.7),
    ]}


def test_policy_changes(run: Run, configs: Callable[..., tuple[str, str]]) -> None:
    old, new = configs(
        ('systemPrompt: "You help customers."', 'systemPrompt: "You help customers.\\nBe brief."'),
        ("tools: {allow: [lookup_order]}", "tools: {allow: [lookup_order, refund], deny: [delete]}"),
        ("retry: {maxRetries: 1}", "retry: {maxRetries: 3}\n    circuitBreaker: {failureThreshold: 2}\n"
                                   "    timeouts: {attemptMs: 20000}\n    requestTimeoutMs: 90000"),
    )
    changes = _changes(run, old, new)["support"]
    assert [(f, c, o, n) for f, c, o, n in changes if f != "systemPrompt"] == [
        ("requestTimeoutMs", "policy", 120000, 90000),
        ("retry.maxRetries", "policy", 1, 3),
        ("timeouts.attemptMs", "policy", 30000, 20000),
        ("tools.allow", "policy", ["lookup_order"], ["lookup_order", "refund"]),
        ("tools.deny", "policy", [], ["delete"]),
        ("primary.breaker.failureThreshold", "policy", 5, 2),
        ("fallback[claude:claude-3-5-haiku-latest].breaker.failureThreshold", "policy", 5, 2),
        ("fallback[gemini:gemini-2.0-flash].breaker.failureThreshold", "policy", 5, 2),
    ]
    assert ("systemPrompt", "policy", "You help customers.", "You help customers.\nBe brief.") in changes
    out = run(old, new)[1]
    assert "    systemPrompt" in out and "changed (1 line → 2 lines)" in out
    assert "You help customers." not in out, "prompt text stays out of the readable summary"


def test_settings_changes_are_listed_apart(run: Run, configs: Callable[..., tuple[str, str]]) -> None:
    old, new = configs(("drainGraceMs: 10000", "drainGraceMs: 20000\n  listen: {port: 9090}"))
    status, out, _ = run(old, new)
    assert status == 1
    assert out.splitlines()[-3:] == ["~ settings", "    drainGraceMs  10000 → 20000", "    listen.port   8080 → 9090"]
    report = json.loads(run(old, new, "--format", "json")[1])
    assert report["settings"] == [
        {"field": "drainGraceMs", "category": "settings", "old": 10000, "new": 20000},
        {"field": "listen.port", "category": "settings", "old": 8080, "new": 9090},
    ]
    assert report["agents"] == {"added": [], "removed": [], "changed": []}


def test_text_output_exactly(run: Run, configs: Callable[..., tuple[str, str]], tmp_path: Path) -> None:
    old, new = configs(("modelId: gpt-4o-mini", "modelId: gpt-4.1-mini"), ("temperature: 0.3", "temperature: 0.2"))
    tables = [compile_file(path)[0] for path in (old, new)]
    status, out, _ = run(old, new)
    assert status == 1
    assert out == (
        f"astra diff {old} → {new}\n"
        f"old table {tables[0]['hash']}\n"  # type: ignore[index]
        f"new table {tables[1]['hash']}\n"  # type: ignore[index]
        "agents: 0 added, 0 removed, 1 changed\n"
        "\n"
        "~ support\n"
        "    model        gpt-4o-mini → gpt-4.1-mini\n"
        "    temperature  0.3 → 0.2\n"
    )


def test_json_output_shape(run: Run, configs: Callable[..., tuple[str, str]]) -> None:
    old, new = configs(("temperature: 0.3", "temperature: 0.2"))
    tables = [compile_file(path)[0] for path in (old, new)]
    status, out, _ = run(old, new, "--format", "json")
    assert status == 1
    assert json.loads(out) == {
        "old": {"source": old, "hash": tables[0]["hash"]},  # type: ignore[index]
        "new": {"source": new, "hash": tables[1]["hash"]},  # type: ignore[index]
        "changed": True,
        "agents": {
            "added": [],
            "removed": [],
            "changed": [{"agent": "support", "changes": [
                {"field": "temperature", "category": "limits", "old": 0.3, "new": 0.2},
            ]}],
        },
        "settings": [],
    }


def test_compiled_tables_and_configs_mix(run: Run, configs: Callable[..., tuple[str, str]], tmp_path: Path) -> None:
    old, new = configs(("temperature: 0.3", "temperature: 0.2"))
    table, _ = compile_file(old)
    assert table is not None
    table_path = tmp_path / "routing-table.json"
    table_path.write_text(dump_table_json(table))
    assert run(str(table_path), old)[0] == 0
    assert _changes(run, str(table_path), new) == {"support": [("temperature", "limits", 0.3, 0.2)]}


# --- git revisions ------------------------------------------------------------------------------

def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository with two commits of deploy/astra.yml; the second raises the temperature."""
    root = tmp_path / "repo"
    (root / "deploy").mkdir(parents=True)
    _git(root, "init", "--quiet")
    (root / "deploy" / "astra.yml").write_text(BASE)
    _git(root, "add", ".")
    _git(root, "commit", "--quiet", "-m", "first")
    (root / "deploy" / "astra.yml").write_text(BASE.replace("temperature: 0.3", "temperature: 0.5"))
    _git(root, "commit", "--quiet", "-am", "second")
    monkeypatch.chdir(root / "deploy")
    return root


def test_git_revisions_of_a_file(run: Run, repo: Path) -> None:
    assert _changes(run, "HEAD~1:deploy/astra.yml", "HEAD:deploy/astra.yml") == {
        "support": [("temperature", "limits", 0.3, 0.5)]}
    status, out, _ = run("HEAD~1:./astra.yml", "astra.yml")
    assert status == 1
    assert out.startswith("astra diff HEAD~1:./astra.yml → astra.yml\n")
    first = _git(repo, "rev-parse", "HEAD~1")
    assert run(f"{first}:deploy/astra.yml", "HEAD~1:deploy/astra.yml")[0] == 0


def test_git_revision_errors_exit_2(run: Run, repo: Path) -> None:
    status, out, err = run("HEAD~5:deploy/astra.yml", "astra.yml")
    assert (status, out) == (2, "")
    assert err.startswith("astra diff: cannot read HEAD~5:deploy/astra.yml: fatal:")
    status, _, err = run("HEAD:deploy/nope.yml", "astra.yml")
    assert status == 2 and "nope.yml" in err
    status, _, err = run("--", "--output=/tmp/x:astra.yml", "astra.yml")
    assert status == 2 and "is not a git revision" in err


def test_a_config_with_errors_in_a_git_revision_names_the_revision(run: Run, repo: Path) -> None:
    (repo / "deploy" / "astra.yml").write_text("version: 1\nagents:\n  - id: x\n    model: {provider: nope, modelId: m}\n")
    _git(repo, "commit", "--quiet", "-am", "broken")
    status, _, err = run("HEAD:deploy/astra.yml", "HEAD~1:deploy/astra.yml")
    assert status == 2
    assert err.startswith("HEAD:deploy/astra.yml:4:") and "AST202" in err


# --- errors -------------------------------------------------------------------------------------

def test_unreadable_and_invalid_inputs_exit_2(run: Run, configs: Callable[..., tuple[str, str]], tmp_path: Path) -> None:
    old, _ = configs()
    status, out, err = run(old, str(tmp_path / "missing.yml"))
    assert (status, out) == (2, "")
    assert f"{tmp_path / 'missing.yml'}:1:1: error AST001 cannot read file" in err
    (tmp_path / "bad.yml").write_text("version: 1\nagents:\n  - id: x\n    model: {provider: openai}\n")
    status, _, err = run(old, str(tmp_path / "bad.yml"))
    assert status == 2 and f"{tmp_path / 'bad.yml'}:4:" in err and "AST102" in err


def test_a_hand_edited_table_exits_2(run: Run, configs: Callable[..., tuple[str, str]], tmp_path: Path) -> None:
    old, _ = configs()
    table, _ = compile_file(old)
    assert table is not None
    table["agents"]["support"]["temperature"] = 1.5
    (tmp_path / "edited.json").write_text(dump_table_json(table))
    status, _, err = run(old, str(tmp_path / "edited.json"))
    assert status == 2 and "AST302" in err


def test_usage_errors_exit_2(run: Run) -> None:
    assert run("only-one")[0] == 2
    assert run("a", "b", "--format", "yaml")[0] == 2


def test_the_astra_command_has_the_diff_verb(configs: Callable[..., tuple[str, str]],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    old, new = configs(("temperature: 0.3", "temperature: 0.2"))
    assert astra_main(["diff", old, old]) == 0
    assert capsys.readouterr().out.endswith("no route changes (identical tables)\n")
    assert astra_main(["diff", old, new, "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out)["agents"]["changed"][0]["agent"] == "support"


def test_a_region_change_moves_the_endpoint(run: Run, configs: Callable[..., tuple[str, str]]) -> None:
    base = ("version: 1\nagents:\n  - id: b\n    model:\n      provider: bedrock\n"
            "      modelId: anthropic.claude-3-5-haiku-20241022-v1:0\n      region: us-east-1\n")
    old, new = configs(("region: us-east-1", "region: eu-west-1"), base=base)
    assert _changes(run, old, new) == {"b": [
        ("endpoint", "route", "https://bedrock-runtime.us-east-1.amazonaws.com",
         "https://bedrock-runtime.eu-west-1.amazonaws.com"),
        ("primary.region", "route", "us-east-1", "eu-west-1"),
    ]}


POOLED = (
    "      endpoint: http://vllm.internal:8000/v1\n",
    "      endpoint: http://vllm.internal:8000/v1\n      pool:\n        members:\n"
    "          - {id: a, endpoint: http://vllm.internal:8000/v1}\n"
    "          - {id: b, endpoint: http://vllm.internal:8001/v1, weight: 2}\n",
)


def test_an_entry_that_becomes_a_pool_lists_its_members(run: Run, configs: Callable[..., tuple[str, str]]) -> None:
    old, new = configs(POOLED)
    assert _changes(run, old, new)["private"] == [
        ("primary.pool.members", "route", None, [
            "a weight 1 at http://vllm.internal:8000/v1, key $VLLM_API_KEY",
            "b weight 2 at http://vllm.internal:8001/v1, key $VLLM_API_KEY",
        ]),
        ("primary.pool.strategy", "route", None, "weighted"),
    ]


def test_a_pool_weight_and_strategy_change(run: Run, configs: Callable[..., tuple[str, str]], tmp_path: Path) -> None:
    pooled = BASE.replace(*POOLED)
    old, new = configs(
        ("      pool:\n        members:", "      pool:\n        strategy: least-in-flight\n        members:"),
        (", weight: 2}", "}"),
        base=pooled,
    )
    changes = _changes(run, old, new)["private"]
    assert [(field, old_value, new_value) for field, _, old_value, new_value in changes] == [
        ("primary.pool.members",
         ["a weight 1 at http://vllm.internal:8000/v1, key $VLLM_API_KEY",
          "b weight 2 at http://vllm.internal:8001/v1, key $VLLM_API_KEY"],
         ["a weight 1 at http://vllm.internal:8000/v1, key $VLLM_API_KEY",
          "b weight 1 at http://vllm.internal:8001/v1, key $VLLM_API_KEY"]),
        ("primary.pool.strategy", "weighted", "least-in-flight"),
    ]
