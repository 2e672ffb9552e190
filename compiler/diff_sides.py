"""The two sides of `astra diff`: each an astra.yml (compiled now), a compiled routing table, or
`REV:PATH`, a file at a git revision (read with `git show REV:PATH`), as routing-table JSON.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from astra_sidecar.compiler.diagnostics import format_text as format_diagnostics
from astra_sidecar.compiler.loader import CompileError, as_table_json, compile_source, read_table_json
from astra_sidecar.compiler.table import Json
from astra_sidecar.compiler.yamlpos import read_source


class DiffInputError(Exception):
    """OLD or NEW could not be read or compiled; the message says why (diagnostics included)."""


@dataclass(frozen=True, slots=True)
class Side:
    """One side of the comparison: what the user named it and its routing-table JSON."""

    name: str
    table: Json


def _git_show(spec: str) -> bytes:
    revision = spec.split(":", 1)[0]
    if revision.startswith("-"):
        raise DiffInputError(f"astra diff: '{spec}' is not a file, and '{revision}' is not a git revision")
    try:
        done = subprocess.run(["git", "show", spec], capture_output=True, check=False, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise DiffInputError(f"astra diff: cannot run git to read {spec}: {reason}") from exc
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip() or f"git show exited with {done.returncode}"
        raise DiffInputError(f"astra diff: cannot read {spec}: {reason}")
    return done.stdout


def _is_git_spec(spec: str) -> bool:
    return ":" in spec and not Path(spec).exists()


def _read_bytes(spec: str) -> bytes:
    if _is_git_spec(spec):
        return _git_show(spec)
    raw, problems = read_source(spec)
    if raw is None:
        raise DiffInputError(format_diagnostics(problems).rstrip("\n"))
    return raw


def _table_of(raw: bytes, name: str) -> Json:
    data = as_table_json(raw)  # the loader's own test: diff and serve agree on what a table is
    if data is not None:
        try:
            return read_table_json(raw, data, name)
        except CompileError as exc:
            raise DiffInputError(format_diagnostics(exc.diagnostics).rstrip("\n")) from exc
    result = compile_source(raw, name)
    if result.table is None:
        raise DiffInputError(format_diagnostics(result.diagnostics).rstrip("\n"))
    return result.table


def load_side(spec: str) -> Side:
    """Read an astra.yml, a routing table or `REV:PATH` into table JSON; raises DiffInputError."""
    return Side(spec, _table_of(_read_bytes(spec), spec))
