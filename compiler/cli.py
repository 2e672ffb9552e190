"""The compiler's verbs of the `astra` command: lint, compile, explain (and `astra_sidecar.compiler.diff`).

Each verb is a registration function that adds its sub-parser; `astra_sidecar.cli` builds the
`astra` command from `COMPILER_VERBS` and the sidecar's `serve`. `python -m astra_sidecar.compiler` runs these
verbs alone (`main`), for scripts that need no sidecar.

Exit status: 0 success; 1 errors in the input (or warnings with --strict, or drift with
--check); 2 usage or I/O errors.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from astra_sidecar.compiler.command import (
    EXIT_ERRORS,
    EXIT_OK,
    EXIT_USAGE,
    HELP_FORMAT,
    SubParsers,
    Verb,
    build_parser,
    credential_variables,
    run_command,
)
from astra_sidecar.compiler.diagnostics import (
    FORMATTERS,
    IO_CODES,
    Diagnostic,
    format_text,
    has_errors,
    suggestion,
)
from astra_sidecar.compiler.diff import add_parser as add_diff
from astra_sidecar.compiler.explain import explain_agent
from astra_sidecar.compiler.table import dump_table_json

LINT_EXIT = """exit status:
  0  no errors (warnings allowed unless --strict)
  1  errors in a file (or warnings with --strict)
  2  usage error, or a file cannot be read"""


def _epilog(*parts: str) -> str:
    return "\n\n".join(parts)


def _status(diagnostics: Sequence[Diagnostic], *, strict: bool = False) -> int:
    if any(d.code in IO_CODES for d in diagnostics):
        return EXIT_USAGE
    if has_errors(diagnostics) or (strict and diagnostics):
        return EXIT_ERRORS
    return EXIT_OK


def _summary(diagnostics: Sequence[Diagnostic], files: int) -> str:
    errors = sum(d.is_error for d in diagnostics)
    warnings = len(diagnostics) - errors
    return f"{errors} error(s), {warnings} warning(s) in {files} file(s)\n"


# --- lint ---------------------------------------------------------------------------------------


def _run_lint(args: argparse.Namespace) -> int:
    from astra_sidecar.compiler.loader import compile_file

    env = os.environ if args.check_env else None
    found: list[Diagnostic] = []
    for path in args.files:
        found.extend(compile_file(path, env=env)[1])
    sys.stdout.write(FORMATTERS[args.format](found))
    if args.format == "text":
        sys.stderr.write(_summary(found, len(args.files)))
    return _status(found, strict=args.strict)


def add_lint(verbs: SubParsers) -> None:
    lint = verbs.add_parser(
        "lint",
        help="check astra.yml files and report diagnostics",
        description="Check astra.yml files; every independent mistake of a file is reported in one run.",
        epilog=_epilog(LINT_EXIT, "environment (read with --check-env):\n" + credential_variables()),
        formatter_class=HELP_FORMAT,
    )
    lint.add_argument("files", nargs="+", metavar="FILE", help="astra.yml files to check")
    lint.add_argument(
        "--format",
        choices=sorted(FORMATTERS),
        default="text",
        help="output format: text (file:line:col), json or sarif (default: text)",
    )
    lint.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    lint.add_argument(
        "--check-env",
        action="store_true",
        help="warn (AST215) about unset credential variables and a Vertex AI agent without google-auth",
    )
    lint.set_defaults(run=_run_lint)


# --- compile ------------------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_atomically(path: str, text: str) -> None:
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            os.fchmod(fh.fileno(), 0o666 & ~_umask())  # mkstemp's 0600 → what open() would give
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_drift(args: argparse.Namespace, text: str) -> int:
    try:
        current: bytes | None = Path(args.output).read_bytes()
    except OSError:
        current = None
    if current != text.encode("utf-8"):
        state = "is missing" if current is None else "differs from"
        sys.stderr.write(
            f"{args.output} {state} what {args.file} compiles to; "
            f"run: astra compile {args.file} -o {args.output}\n"
        )
        return EXIT_ERRORS
    sys.stderr.write(f"{args.output} is up to date\n")
    return EXIT_OK


def _run_compile(args: argparse.Namespace) -> int:
    if args.check and not args.output:
        sys.stderr.write("astra compile: --check needs -o OUT (the file to compare)\n")
        return EXIT_USAGE
    from astra_sidecar.compiler.loader import compile_file

    table, found = compile_file(args.file)
    sys.stderr.write(format_text(found))
    if table is None:
        return _status(found)
    text = dump_table_json(table)
    if args.check:
        return _check_drift(args, text)
    if not args.output:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        _write_atomically(args.output, text)
    except OSError as exc:
        sys.stderr.write(f"astra compile: cannot write {args.output}: {exc.strerror or exc}\n")
        return EXIT_USAGE
    return EXIT_OK


def add_compile(verbs: SubParsers) -> None:
    comp = verbs.add_parser(
        "compile",
        help="compile astra.yml into a routing table (JSON)",
        description="Compile astra.yml into the routing table `astra serve` runs (diagnostics on stderr).",
        epilog=_epilog(
            "exit status:\n  0  compiled (or, with --check, OUT is up to date)\n"
            "  1  errors in FILE, or --check found OUT out of date\n"
            "  2  usage error, or FILE cannot be read or OUT written",
            "environment: none is read (credentials are looked up when `astra serve` starts).",
        ),
        formatter_class=HELP_FORMAT,
    )
    comp.add_argument("file", metavar="FILE", help="the astra.yml to compile")
    comp.add_argument(
        "-o", "--output", metavar="OUT", help="write the table here, atomically (default: stdout)"
    )
    comp.add_argument(
        "--check", action="store_true", help="exit 1 when OUT differs from what FILE compiles to"
    )
    comp.set_defaults(run=_run_compile)


# --- explain ------------------------------------------------------------------------------------


def _run_explain(args: argparse.Namespace) -> int:
    from astra_sidecar.compiler.loader import CompileError, load_routing_table

    try:
        table = load_routing_table(args.file)
    except CompileError as exc:
        sys.stderr.write(format_text(exc.diagnostics))
        return _status(exc.diagnostics)
    agent = table.agents.get(args.agent)
    if agent is None:
        known = ", ".join(sorted(table.agents))
        sys.stderr.write(
            f"astra explain: no agent '{args.agent}'{suggestion(args.agent, table.agents)} "
            f"(agents: {known})\n"
        )
        return EXIT_USAGE
    sys.stdout.write(explain_agent(table, agent))
    return EXIT_OK


def add_explain(verbs: SubParsers) -> None:
    exp = verbs.add_parser(
        "explain",
        help="describe one agent's resolved route in plain words",
        description="Describe one agent: its plan, retries, timeouts, worst-case latency and policy.",
        epilog=_epilog(
            "exit status:\n  0  explained\n  1  errors in FILE\n  2  unknown AGENT, or FILE cannot be read",
            "environment: none is read.",
        ),
        formatter_class=HELP_FORMAT,
    )
    exp.add_argument("file", metavar="FILE", help="astra.yml or a compiled routing table")
    exp.add_argument("agent", metavar="AGENT", help="the agent id (the `model` callers send)")
    exp.set_defaults(run=_run_explain)


# --- the command ---------------------------------------------------------------------------------


COMPILER_VERBS: tuple[Verb, ...] = (add_lint, add_compile, add_explain, add_diff)


def main(argv: list[str] | None = None) -> int:
    """`python -m astra_sidecar.compiler`: the compiler's verbs without `serve` (that is `astra_sidecar.cli`)."""
    return run_command(build_parser(COMPILER_VERBS, "Compile and lint astra.yml LLM gateway configs."), argv)
