"""examples/gitops: the GitHub workflow (structure, the GitHub schema when check-jsonschema is
installed, and its shell steps run for real on a pull request made in a temporary repository),
and .pre-commit-hooks.yaml (valid hooks whose entries are this package's commands)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from astra_sidecar.cli import main as astra
from tests.deploy.repo_files import GITOPS, K8S, ROOT, load_yaml

WORKFLOW = GITOPS / "github-actions.yml"
CONFIG = """\
version: 1
agents:
  - id: assistant
    model:
      provider: openai
      modelId: gpt-4o-mini
      temperature: 0.3
  - id: demo
    model: {provider: mock, modelId: echo}
"""


def _workflow() -> dict[Any, Any]:
    data: dict[Any, Any] = load_yaml(WORKFLOW)
    return data


def _steps() -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = _workflow()["jobs"]["astra"]["steps"]
    return steps


def _step(name: str) -> dict[str, Any]:
    return next(s for s in _steps() if s.get("name") == name)


def test_runs_on_pull_requests_touching_the_config_with_read_only_permissions() -> None:
    workflow = _workflow()
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert set(triggers) == {"pull_request"}
    job_env = workflow["jobs"]["astra"]["env"]
    assert set(triggers["pull_request"]["paths"]) >= {job_env["ASTRA_CONFIG"], job_env["ASTRA_TABLE"]}
    assert workflow["permissions"] == {"contents": "read"}


def test_sets_up_python_and_installs_astra_from_a_documented_spec() -> None:
    steps = _steps()
    uses = [s["uses"].split("@")[0] for s in steps if "uses" in s]
    assert uses == ["actions/checkout", "actions/setup-python"]
    assert steps[0]["with"]["fetch-depth"] == 0, "astra diff needs the base revision"
    assert steps[1]["with"]["python-version"] == "3.11"
    assert _step("Install astra")["run"] == 'python -m pip install "$ASTRA_PIP_SPEC"'
    assert "git+https://" in _workflow()["jobs"]["astra"]["env"]["ASTRA_PIP_SPEC"]


def test_runs_lint_compile_check_and_diff() -> None:
    assert _step("Lint the config")["run"] == 'astra lint --format github "$ASTRA_CONFIG"'
    assert _step("Check the committed table is up to date")["run"] == (
        'astra compile "$ASTRA_CONFIG" -o "$ASTRA_TABLE" --check')
    diff_step = _step("Routing changes")
    assert 'astra diff "$BASE_SHA:$ASTRA_CONFIG" "$ASTRA_CONFIG"' in diff_step["run"]
    assert '>> "$GITHUB_STEP_SUMMARY"' in diff_step["run"]
    assert diff_step["env"] == {"BASE_SHA": "${{ github.event.pull_request.base.sha }}"}
    assert all("${{" not in s.get("run", "") for s in _steps()), "expressions go through env, not into scripts"


def test_the_workflow_matches_githubs_schema() -> None:
    pytest.importorskip("check_jsonschema", reason="pip install check-jsonschema")
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- the workflow's shell steps, run on a pull request in a temporary repository ---------------

def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _commit_config(repo: Path, text: str, message: str) -> str:
    (repo / "deploy" / "astra.yml").write_text(text)
    assert astra(["compile", str(repo / "deploy" / "astra.yml"), "-o", str(repo / "deploy" / "routing-table.json")]) == 0
    _git(repo, "add", ".")
    _git(repo, "commit", "--quiet", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def _run_step(step: dict[str, Any], repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A `run:` step as GitHub runs it: bash -e -o pipefail, the job's and the step's env."""
    assert "astra" in (Path(sys.executable).parent / "astra").name
    job_env = _workflow()["jobs"]["astra"]["env"]
    full_env = {**os.environ, **job_env, **env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                          cwd=repo, env=full_env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def pull_request(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A repository whose base commit has CONFIG and whose head raises a temperature."""
    if not (Path(sys.executable).parent / "astra").exists():
        pytest.skip("the astra command is not installed beside this Python")
    repo = tmp_path / "repo"
    (repo / "deploy").mkdir(parents=True)
    _git(repo, "init", "--quiet")
    base = _commit_config(repo, CONFIG, "base")
    _commit_config(repo, CONFIG.replace("temperature: 0.3", "temperature: 0.7"), "head")
    summary = tmp_path / "summary.md"
    summary.write_text("")
    return repo, {"BASE_SHA": base, "GITHUB_STEP_SUMMARY": str(summary)}


def test_the_steps_pass_on_a_good_pull_request_and_summarise_the_diff(pull_request: tuple[Path, dict[str, str]]) -> None:
    repo, env = pull_request
    for name in ("Lint the config", "Check the committed table is up to date", "Routing changes"):
        done = _run_step(_step(name), repo, env)
        assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert summary.startswith("## Routing changes\n```diff\nastra diff ")
    assert "~ assistant\n    temperature  0.3 → 0.7\n```\n" in summary


def test_a_stale_table_fails_the_check(pull_request: tuple[Path, dict[str, str]]) -> None:
    repo, env = pull_request
    (repo / "deploy" / "astra.yml").write_text(CONFIG.replace("temperature: 0.3", "temperature: 0.9"))
    done = _run_step(_step("Check the committed table is up to date"), repo, env)
    assert done.returncode == 1
    assert "differs from what deploy/astra.yml compiles to" in done.stderr


def test_lint_errors_become_annotations_and_fail(pull_request: tuple[Path, dict[str, str]]) -> None:
    repo, env = pull_request
    (repo / "deploy" / "astra.yml").write_text(CONFIG.replace("provider: openai", "provider: openaii"))
    done = _run_step(_step("Lint the config"), repo, env)
    assert done.returncode == 1
    assert done.stdout.startswith("::error file=deploy/astra.yml,line=5,")


def test_a_config_new_in_the_pull_request_is_said_so(pull_request: tuple[Path, dict[str, str]]) -> None:
    repo, env = pull_request
    done = _run_step(_step("Routing changes"), repo, {**env, "ASTRA_CONFIG": "deploy/other.yml"})
    assert done.returncode == 0
    assert Path(env["GITHUB_STEP_SUMMARY"]).read_text() == (
        "## Routing changes\ndeploy/other.yml is new in this pull request.\n")


# --- .pre-commit-hooks.yaml ----------------------------------------------------------------------

def _hooks() -> dict[str, dict[str, Any]]:
    hooks = load_yaml(ROOT / ".pre-commit-hooks.yaml")
    return {h["id"]: h for h in hooks}


def test_the_hooks_are_valid_and_call_this_packages_command() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    hooks = _hooks()
    assert set(hooks) == {"astra-lint", "astra-compile-check"}
    for hook in hooks.values():
        assert {"id", "name", "entry", "language"} <= set(hook)
        assert hook["language"] == "python"
        assert hook["entry"].split()[0] in scripts
    assert hooks["astra-compile-check"]["pass_filenames"] is False


@pytest.mark.parametrize(("path", "linted"), [
    ("astra.yml", True), ("deploy/astra.yaml", True), ("examples/astra.mapping.yml", True),
    ("examples/k8s/astra.yml", True), ("myastra.yml", False), ("astra.json", False), ("deploy/other.yml", False),
])
def test_the_lint_hook_picks_astra_configs(path: str, linted: bool) -> None:
    assert bool(re.search(_hooks()["astra-lint"]["files"], path)) is linted


def test_the_compile_check_hook_runs_when_the_config_or_the_table_changes() -> None:
    pattern = _hooks()["astra-compile-check"]["files"]
    assert re.search(pattern, "deploy/routing-table.json") and re.search(pattern, "deploy/astra.yml")
    assert not re.search(pattern, "README.md")


def test_the_hook_entries_work_as_pre_commit_calls_them(capsys: pytest.CaptureFixture[str]) -> None:
    hooks = _hooks()
    lint = hooks["astra-lint"]["entry"].split()[1:]
    assert astra([*lint, str(K8S / "astra.yml"), str(ROOT / "examples" / "astra.yml")]) == 0
    assert astra([*lint, str(ROOT / "examples" / "invalid" / "AST202-unknown-provider.yml")]) == 1
    check = hooks["astra-compile-check"]["entry"].split()[1:]
    assert astra([*check, str(K8S / "astra.yml"), "-o", str(K8S / "routing-table.json")]) == 0
    capsys.readouterr()
