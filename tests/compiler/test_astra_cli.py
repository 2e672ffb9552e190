"""The `astra` command line: verbs, formats, exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path

import pytest

from astra_sidecar.compiler.cli import main as compiler_main
from astra_sidecar.compiler.table import RoutingTable, TableLoadError, dump_table_json
from astra_sidecar.table_child import EarlyLoader
from tests.compiler.helpers import Cli, Write

TableLoader = Callable[[str], RoutingTable]

CLEAN = "agents:\n  - id: demo\n    model: {provider: mock, modelId: echo}\n"
BROKEN = "agents:\n  - id: demo\n    model: {provider: mokc, modelId: echo}\n    tier: [x]\n"
#: Two fallbacks: with the default budget (3 tries of 30000 ms + 750 ms backoff = 90750 ms per entry)
#: the second starts after 181500 ms, past the 120000 ms deadline: exactly one AST214 at 2:9.
WARNS = ("agents:\n  - id: a\n    model: {provider: mock, modelId: m, "
         "fallback: [{provider: mock, modelId: n}, {provider: mock, modelId: o}]}\n")
REPO = Path(__file__).resolve().parents[2]


def test_lint_clean(cli: Cli, write: Write) -> None:
    result = cli("lint", str(write(CLEAN)))
    assert (result.code, result.out, result.err) == (0, "", "0 error(s), 0 warning(s) in 1 file(s)\n")


def test_lint_errors(cli: Cli, write: Write) -> None:
    path = write(BROKEN)
    result = cli("lint", str(path))
    assert result.code == 1
    assert result.out == f"{path}:4:11: error AST103 agents[0].tier: expected a string, got a list\n"
    assert result.err == "1 error(s), 0 warning(s) in 1 file(s)\n"


def test_lint_warnings_pass_unless_strict(cli: Cli, write: Write) -> None:
    path = str(write(WARNS))
    assert cli("lint", path).code == 0
    strict = cli("lint", "--strict", path)
    assert strict.code == 1 and strict.out.count("warning AST214") == 1


def test_lint_several_files_and_an_unreadable_one(cli: Cli, write: Write, tmp_path: Path) -> None:
    good, missing = write(CLEAN), tmp_path / "missing.yml"
    result = cli("lint", str(good), str(missing))
    assert result.code == 2
    assert result.out == f"{missing}:1:1: error AST001 cannot read file: No such file or directory\n"
    assert result.err == "1 error(s), 0 warning(s) in 2 file(s)\n"


def test_lint_json_format(cli: Cli, write: Write) -> None:
    path = write(BROKEN)
    result = cli("lint", "--format", "json", str(path))
    assert result.code == 1 and result.err == ""
    assert json.loads(result.out) == [{
        "file": str(path), "line": 4, "column": 11, "severity": "error", "code": "AST103",
        "message": "agents[0].tier: expected a string, got a list",
    }]


def test_lint_github_format_escapes_properties_and_message(cli: Cli, write: Write) -> None:
    path = write("agents:\n  - id: demo\n    model: {provider: mock, modelId: echo}\n    extra%: 1\n", "a,b.yml")
    result = cli("lint", "--format", "github", str(path))
    escaped = str(path).replace(",", "%2C").replace(":", "%3A")
    assert result.out == f"::error file={escaped},line=4,col=5,title=AST101::unknown key 'extra%25' in agents[0]\n"


def test_lint_sarif_format(cli: Cli, write: Write) -> None:
    path = write(WARNS)
    log = json.loads(cli("lint", "--format", "sarif", str(path)).out)
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    assert run["tool"]["driver"]["rules"] == [{
        "id": "AST214", "shortDescription": {"text": "worst-case latency exceeds the request deadline"},
        "defaultConfiguration": {"level": "warning"},
    }]
    (result,) = run["results"]
    assert (result["ruleId"], result["ruleIndex"], result["level"]) == ("AST214", 0, "warning")
    assert result["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": str(path)}, "region": {"startLine": 2, "startColumn": 9}}


def test_lint_check_env_reads_the_environment(cli: Cli, write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write("agents:\n  - id: a\n    model: {provider: groq, modelId: g}\n")
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    assert cli("lint", str(path)).out == ""
    missing = cli("lint", "--check-env", str(path))
    assert (missing.code, missing.out) == (
        0, f"{path}:3:23: warning AST215 environment variable GROQ_API_KEY is not set "
           "(API key of groq:g:https://api.groq.com/openai/v1)\n")
    monkeypatch.setenv("GROQ_API_KEY", "k")
    assert cli("lint", "--check-env", "--strict", str(path)).code == 0


def test_compile_to_stdout_is_deterministic(cli: Cli, write: Write) -> None:
    path = str(write(CLEAN))
    first, second = cli("compile", path), cli("compile", path)
    assert first.code == second.code == 0
    assert first.out == second.out and first.out.endswith("}\n")
    assert first.out == dump_table_json(json.loads(first.out))


def test_compile_to_a_file_then_check_for_drift(cli: Cli, write: Write, tmp_path: Path) -> None:
    source, out = write(CLEAN), tmp_path / "table.json"
    assert cli("compile", str(source), "-o", str(out)).code == 0
    written = out.read_bytes()
    assert cli("compile", str(source), "-o", str(out)).code == 0
    assert out.read_bytes() == written, "compiling twice gives identical bytes"
    assert list(tmp_path.glob(".table.json.*")) == [], "no temporary files are left behind"
    same = cli("compile", str(source), "-o", str(out), "--check")
    assert (same.code, same.err) == (0, f"{out} is up to date\n")
    write(CLEAN.replace("echo", "other"))
    drift = cli("compile", str(source), "-o", str(out), "--check")
    assert (drift.code, drift.err) == (
        1, f"{out} differs from what {source} compiles to; run: astra compile {source} -o {out}\n")
    assert out.read_bytes() == written, "--check never writes"


def test_compile_check_with_missing_output(cli: Cli, write: Write, tmp_path: Path) -> None:
    source, out = write(CLEAN), tmp_path / "none.json"
    result = cli("compile", str(source), "-o", str(out), "--check")
    assert (result.code, result.err) == (1, f"{out} is missing what {source} compiles to; run: astra compile {source} -o {out}\n")


def test_compile_check_needs_an_output(cli: Cli, write: Write) -> None:
    result = cli("compile", str(write(CLEAN)), "--check")
    assert (result.code, result.err) == (2, "astra compile: --check needs -o OUT (the file to compare)\n")


def test_compile_errors_write_nothing(cli: Cli, write: Write, tmp_path: Path) -> None:
    source, out = write(BROKEN), tmp_path / "table.json"
    result = cli("compile", str(source), "-o", str(out))
    assert (result.code, result.out) == (1, "")
    assert result.err == f"{source}:4:11: error AST103 agents[0].tier: expected a string, got a list\n"
    assert not out.exists()


def test_compile_prints_warnings_and_still_compiles(cli: Cli, write: Write) -> None:
    result = cli("compile", str(write(WARNS)))
    assert result.code == 0 and "warning AST214" in result.err and json.loads(result.out)["agents"]


def test_compile_io_errors(cli: Cli, write: Write, tmp_path: Path) -> None:
    assert cli("compile", str(tmp_path / "missing.yml")).code == 2
    unwritable = cli("compile", str(write(CLEAN)), "-o", str(tmp_path / "no" / "dir" / "t.json"))
    assert unwritable.code == 2
    assert unwritable.err.startswith(f"astra compile: cannot write {tmp_path / 'no' / 'dir' / 't.json'}: ")


EXPLAINED = """\
settings:
  timeouts: {attemptMs: 20000}
providers:
  openai: {apiKeyEnv: TEAM_KEY}
agents:
  - id: support
    displayName: Support
    tier: pro
    model:
      provider: openai
      modelId: gpt-4o-mini
      maxOutputTokens: 512
      fallback:
        - {provider: ollama, modelId: llama3.2, capabilities: {tools: false}}
        - {provider: mock, modelId: sorry, mock: {reply: Try later., latencyMs: 5}}
    systemPrompt: "Hello"
    tools: {deny: [shell]}
"""


def test_explain(cli: Cli, write: Write) -> None:
    result = cli("explain", str(write(EXPLAINED)), "support")
    assert result.code == 0, result.err
    assert result.out == """\
Agent support (Support, tier pro)
Plan (tried in order):
  1. primary     openai model gpt-4o-mini at https://api.openai.com/v1; API key from $TEAM_KEY
                 breaker opens after 5 failures within 60000 ms, probes again after 60000 ms
  2. fallback 1  ollama model llama3.2 at http://localhost:11434/v1 (or $OLLAMA_BASE_URL when set); no credentials
                 breaker opens after 5 failures within 60000 ms, probes again after 60000 ms; no tools
  3. fallback 2  mock model sorry answers locally: reply 'Try later.'; latency 5 ms, 0 ms between chunks
                 breaker opens after 5 failures within 60000 ms, probes again after 60000 ms
Retry:    up to 2 retries per plan entry on HTTP 429, 500, 502, 503, 504 and network errors; backoff 250 ms \
doubling up to 8000 ms, each delay shortened at random by up to 20% (longest delays: 250 ms, 500 ms); \
Retry-After honoured up to 30000 ms
Timeouts: connect 10000 ms; 20000 ms per try for the whole answer (or a stream's first chunk); stream idle 60000 ms; \
whole request 120000 ms
Budget:   worst case 60750 ms per plan entry (3 tries of 20000 ms + 750 ms backoff), 182250 ms for the whole plan; \
fallback 2 starts after the 120000 ms deadline and may never be reached
Limits:   output up to 512 tokens
Tools:    allowed: all; denied: shell
Prompt:   system prompt 1-line template; prompt cache: off
"""


POOLED = """\
settings:
  state: {redis: {urlEnv: ASTRA_REDIS_URL}}
agents:
  support:
    circuitBreaker: {failureThreshold: 3, shared: true}
    model:
      provider: openai
      modelId: gpt-4o-mini
      pool:
        members:
          - {id: east, endpoint: "https://east.example.com/v1", weight: 3}
          - {id: west, endpoint: "https://west.example.com/v1", apiKeyEnv: WEST_KEY}
      fallback:
        provider: mistral
        modelId: mistral-small-latest
        pool:
          strategy: least-in-flight
          members: [{apiKeyEnv: KEY_A}, {apiKeyEnv: KEY_B}]
"""


def test_explain_lists_each_pool_member(cli: Cli, write: Write) -> None:
    result = cli("explain", str(write(POOLED)), "support")
    assert result.code == 0, result.err
    assert result.out.split("Retry:")[0] == """\
Agent support
Plan (tried in order):
  1. primary     openai model gpt-4o-mini, a pool of 2 (weighted: by weight); a failed attempt is retried \
on another member
                 - east: weight 3, at https://east.example.com/v1; API key from $OPENAI_API_KEY; own breaker \
(3 failures within 60000 ms, shared through Redis)
                 - west: weight 1, at https://west.example.com/v1; API key from $WEST_KEY; own breaker \
(3 failures within 60000 ms, shared through Redis)
  2. fallback 1  mistral model mistral-small-latest, a pool of 2 (least-in-flight: fewest requests in flight \
first); a failed attempt is retried on another member
                 - member1: at https://api.mistral.ai/v1; API key from $KEY_A; own breaker (3 failures within \
60000 ms, shared through Redis)
                 - member2: at https://api.mistral.ai/v1; API key from $KEY_B; own breaker (3 failures within \
60000 ms, shared through Redis)
"""


def test_explain_a_compiled_table_gives_the_same_words(cli: Cli, write: Write, tmp_path: Path) -> None:
    source = write(EXPLAINED)
    table = tmp_path / "t.json"
    assert cli("compile", str(source), "-o", str(table)).code == 0
    assert cli("explain", str(table), "support").out == cli("explain", str(source), "support").out


def test_explain_unknown_agent(cli: Cli, write: Write) -> None:
    result = cli("explain", str(write(EXPLAINED)), "suport")
    assert (result.code, result.out) == (2, "")
    assert result.err == "astra explain: no agent 'suport'; did you mean 'support'? (agents: support)\n"


def test_explain_invalid_config(cli: Cli, write: Write) -> None:
    path = write(BROKEN)
    result = cli("explain", str(path), "demo")
    assert (result.code, result.err) == (1, f"{path}:4:11: error AST103 agents[0].tier: expected a string, got a list\n")


def test_serve_hands_over_to_the_sidecar_with_the_child_process_loader(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[Namespace, TableLoader]] = []
    fake = types.ModuleType("astra_sidecar.sidecar.server")

    def serve_main(args: Namespace, load: TableLoader) -> int:
        seen.append((args, load))
        return 7

    fake.serve_main = serve_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "astra_sidecar.sidecar.server", fake)
    assert cli("serve", "astra.yml", "--port", "9000", "--workers", "2").code == 7
    ((args, load),) = seen
    assert (args.config, args.host, args.port, args.workers) == ("astra.yml", None, 9000, 2)
    assert isinstance(load, EarlyLoader)  # its child was started before the server's import
    with pytest.raises(TableLoadError, match=r"astra\.yml"):
        load("astra.yml")


def test_the_compiler_verbs_alone_have_no_serve(capsys: pytest.CaptureFixture[str]) -> None:
    assert compiler_main(["serve", "astra.yml"]) == 2
    assert "invalid choice: 'serve'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "code"),
    [([], 2), (["frobnicate"], 2), (["lint"], 2), (["lint", "--format", "xml", "x"], 2), (["--help"], 0), (["--version"], 0)],
)
def test_usage(cli: Cli, argv: list[str], code: int) -> None:
    assert cli(*argv).code == code


def test_version(cli: Cli) -> None:
    result = cli("--version")
    assert result.code == 0 and result.out.startswith("astra ") and result.err == ""


@pytest.mark.parametrize("package", ["astra_sidecar", "compiler"])
def test_python_dash_m_runs_the_cli(package: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", package, "lint", "examples/astra.yml"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "0 error(s), 0 warning(s) in 1 file(s)\n")


def test_verbs_other_than_serve_do_not_import_the_sidecar() -> None:
    code = "import sys; from astra_sidecar.cli import main; main(['lint', 'examples/astra.yml']); print(sorted(m for m in sys.modules if m.split('.')[0] == 'sidecar'))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout == "[]\n"


def test_compile_output_honours_the_umask(cli: Cli, write: Write, tmp_path: Path) -> None:
    import os

    out = tmp_path / "table.json"
    old = os.umask(0o022)
    try:
        assert cli("compile", str(write(CLEAN)), "-o", str(out)).code == 0
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o644
