"""Plain helpers shared by the compiler tests (imported as a module; fixtures live in conftest)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from astra_sidecar.compiler.diagnostics import Diagnostic
from astra_sidecar.compiler.loader import compile_source
from astra_sidecar.compiler.table import Json


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


Cli = Callable[..., CliResult]
Write = Callable[..., Path]


def lint_text(text: str, env: dict[str, str] | None = None) -> list[str]:
    """Diagnostics for `text` (as file `astra.yml`), each as `line:col: severity CODE message`."""
    result = compile_source(text.encode(), "astra.yml", env=env)
    return [_short(d) for d in result.diagnostics]


def compile_text(text: str) -> Json:
    """The table for `text`, failing the test on any error."""
    result = compile_source(text.encode(), "astra.yml")
    assert result.table is not None, [str(d) for d in result.diagnostics]
    return result.table


def _short(d: Diagnostic) -> str:
    return f"{d.line}:{d.col}: {d.severity.value} {d.code} {d.message}"
