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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeAlias

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
from astra_sidecar.compiler.loader import CompileError, compile_file, load_routing_table
from astra_sidecar.compiler.table import dump_table_json

Run = Callable[[argparse.Namespace], int]
SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
#: Adds one verb's sub-parser (with `run` as its default) to the command's sub-parsers.
Verb = Callable[[SubParsers], None]

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2


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
    env = os.environ if args.check_env else None
    found: list[Diagnostic] = []
    for path in args.files:
        found.extend(compile_file(path, env=env)[1])
    sys.stdout.write(FORMATTERS[args.format](found))
    if args.format == "text":
        sys.stderr.write(_summary(found, len(args.files)))
    return _status(found, strict=args.strict)


def add_lint(verbs: SubParsers) -> None:
    lint = verbs.add_parser("lint", help="check astra.yml files and report diagnostics")
    lint.add_argument("files", nargs="+", metavar="FILE")
    lint.add_argument(
        "--format", choices=sorted(FORMATTERS), default="text", help="output format (default: text)"
    )
    lint.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    lint.add_argument("--check-env", action="store_true", help="warn about unset credential variables")
    lint.set_defaults(run=_run_lint)


# --- compile ------------------------------------------------------------------------------------


def _write_atomically(path: str, text: str) -> None:
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
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
    comp = verbs.add_parser("compile", help="compile astra.yml into a routing table (JSON)")
    comp.add_argument("file", metavar="FILE")
    comp.add_argument("-o", "--output", metavar="OUT", help="write the table here (default: stdout)")
    comp.add_argument(
        "--check", action="store_true", help="exit 1 when OUT differs from what FILE compiles to"
    )
    comp.set_defaults(run=_run_compile)


# --- explain ------------------------------------------------------------------------------------


def _run_explain(args: argparse.Namespace) -> int:
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
    exp = verbs.add_parser("explain", help="describe one agent's resolved route in plain words")
    exp.add_argument("file", metavar="FILE", help="astra.yml or a compiled routing table")
    exp.add_argument("agent", metavar="AGENT")
    exp.set_defaults(run=_run_explain)


# --- the command ---------------------------------------------------------------------------------


COMPILER_VERBS: tuple[Verb, ...] = (add_lint, add_compile, add_explain, add_diff)


class _Version(argparse.Action):
    """--version, looking the version up only when asked (importlib.metadata is slow to import)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from importlib import metadata

        try:
            version = metadata.version("astra-sidecar")
        except metadata.PackageNotFoundError:
            version = "unknown (not installed)"
        sys.stdout.write(f"astra {version}\n")
        parser.exit()


def build_parser(verbs: Sequence[Verb], description: str) -> argparse.ArgumentParser:
    """The `astra` parser with `--version` and one sub-command per verb."""
    parser = argparse.ArgumentParser(prog="astra", description=description)
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in verbs:
        add(commands)
    return parser


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse `argv` and run the chosen verb; returns the exit status."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    run: Run = args.run
    return run(args)


def main(argv: list[str] | None = None) -> int:
    """`python -m astra_sidecar.compiler`: the compiler's verbs without `serve` (that is `astra_sidecar.cli`)."""
    return run_command(build_parser(COMPILER_VERBS, "Compile and lint astra.yml LLM gateway configs."), argv)
