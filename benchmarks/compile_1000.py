"""Benchmark: lint and compile a generated 1,000-agent astra.yml; prints the best of N runs.

    python benchmarks/compile_1000.py [--agents 1000] [--runs 5] [--keep FILE]

The generated file mixes every provider, both fallback forms (lists and `agent:` references),
tools policies and a distinct systemPrompt template per agent, so no per-template cache helps.
"lint" is what `astra lint` does (every check, no output); "compile" is what `astra compile -o`
does (every check, then the table is serialised and written). Each run is a fresh process, so no
cache survives between runs; the in-process figure leaves out interpreter start-up and imports,
the CLI figure is the wall time of the real command. Target: lint + compile < 2 s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from astra_sidecar.compiler.loader import compile_file
from astra_sidecar.compiler.table import dump_table_json

TARGETS = [
    ("openai", "gpt-4o-mini", ""), ("claude", "claude-3-5-haiku-latest", ""), ("gemini", "gemini-2.0-flash", ""),
    ("grok", "grok-3-mini", ""), ("groq", "llama-3.3-70b-versatile", ""), ("mistral", "mistral-small-latest", ""),
    ("openrouter", "meta-llama/llama-3.1-8b-instruct", ""), ("ollama", "llama3.2", ""),
    ("vllm", "qwen2.5-7b", "endpoint: http://vllm-{n}.internal:8000"), ("bedrock", "amazon.nova-lite-v1:0", "region: us-east-1"),
    ("cerebras", "llama-3.3-70b", ""), ("mock", "echo", "mock: {{latencyMs: {n}}}"),
]


def _target(index: int, indent: str) -> list[str]:
    provider, model, extra = TARGETS[index % len(TARGETS)]
    lines = [f"provider: {provider}", f"modelId: {model}-{index % 7}"]
    if extra:
        lines.append(extra.format(n=index % 5))
    return [indent + line for line in lines]


def _agent(n: int) -> str:
    lines = [f"  - id: agent-{n}", f"    displayName: Agent number {n}", f"    tier: {'pro' if n % 3 else 'free'}",
             "    model:", *_target(n, "      "), "      maxContextTokens: 128000", "      maxOutputTokens: 4096",
             "      temperature: 0.5", "      fallback:"]
    first = _target(n + 1, "          ")
    lines += ["        - " + first[0].strip(), *first[1:]]
    if n % 4 == 0 and n > 0:
        lines.append(f"        - agent: agent-{n - 1}")
    lines += [
        "    systemPrompt: |",
        f"      You are {{{{ agent.displayName }}}} (#{n}), served by {{{{ model.provider }}}}.",
        f"      {{% if vars.team %}}Team: {{{{ vars.team }}}}.{{% endif %}} Today is {{{{ date }}}}; ticket {n}.",
        f"    promptVars: {{team: team-{n % 13}}}",
        "    tools: {allow: [search, lookup], deny: [shell]}",
    ]
    return "\n".join(lines)


def generate(agents: int) -> str:
    head = ("version: 1\nsettings:\n  retry: {maxRetries: 1}\n  timeouts: {attemptMs: 10000}\n"
            "providers:\n  openrouter:\n    headers: {X-Title: bench}\nagents:\n")
    return head + "\n".join(_agent(n) for n in range(agents)) + "\n"


def _measure_once(verb: str, source: str, output: str) -> float:
    """One cold run in this (fresh) process: `lint` or `compile`, imports excluded."""
    start = time.perf_counter()
    table, _ = compile_file(source)
    if verb == "compile":
        assert table is not None
        Path(output).write_text(dump_table_json(table), encoding="utf-8")
    return time.perf_counter() - start


def _best(runs: int, command: list[str], *, report: bool) -> float:
    """Best of `runs` fresh processes: the time they report, or their wall time."""
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        timings.append(float(done.stdout) if report else time.perf_counter() - start)
    return min(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", help="also write the generated astra.yml here")
    parser.add_argument("--child", nargs=3, metavar=("VERB", "SOURCE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(_measure_once(*args.child))
        return 0
    text = generate(args.agents)
    with tempfile.TemporaryDirectory() as tmp:
        source, output = Path(tmp) / "astra.yml", Path(tmp) / "routing-table.json"
        source.write_text(text, encoding="utf-8")
        if args.keep:
            Path(args.keep).write_text(text, encoding="utf-8")
        table, found = compile_file(str(source))
        if table is None or found:
            print("\n".join(str(d) for d in found[:5]), file=sys.stderr)
            return 1
        child = [sys.executable, __file__, "--child"]
        cli = [sys.executable, "-m", "compiler"]
        lint_s = _best(args.runs, [*child, "lint", str(source), str(output)], report=True)
        compile_s = _best(args.runs, [*child, "compile", str(source), str(output)], report=True)
        lint_cli = _best(args.runs, [*cli, "lint", str(source)], report=False)
        compile_cli = _best(args.runs, [*cli, "compile", str(source), "-o", str(output)], report=False)
    print(f"{args.agents} agents, {len(text.splitlines())} lines, {len(table['clusters'])} clusters, best of {args.runs} "
          f"cold runs: lint {lint_s:.2f} s + compile {compile_s:.2f} s = {lint_s + compile_s:.2f} s in-process; "
          f"as CLI commands (with interpreter start-up): lint {lint_cli:.2f} s, compile {compile_cli:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
