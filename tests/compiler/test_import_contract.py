"""The routing table is the only contract: the sidecar imports nothing of the compiler but
`astra_sidecar.compiler.table`, and the compiler imports neither the sidecar nor the `astra` command."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _absolute(path: Path, node: ast.ImportFrom) -> str:
    """The module a `from … import` names; `.` is the file's own package, `..` its parent."""
    if not node.level:
        return node.module or ""
    package = ("astra_sidecar", *path.parent.relative_to(ROOT).parts)
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in the file, at any depth (function-level ones too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, _absolute(path, node)


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _offending(folder: str, allowed: str | None, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for line, module in imported_modules(path):
            bad = any(_within(module, package) for package in forbidden)
            if bad and not (allowed and _within(module, allowed)):
                found.append(f"{path.relative_to(ROOT)}:{line}: imports {module}")
    return found


def test_the_sidecar_imports_only_the_table_package_of_the_compiler() -> None:
    forbidden = ("astra_sidecar.compiler", "compiler")
    assert _offending("sidecar", "astra_sidecar.compiler.table", forbidden) == []


def test_the_compiler_imports_neither_the_sidecar_nor_the_command() -> None:
    forbidden = ("astra_sidecar.sidecar", "sidecar", "astra_sidecar.cli", "astra_sidecar.__main__")
    assert _offending("compiler", None, forbidden) == []


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("import astra_sidecar.compiler.loader\n", "astra_sidecar.compiler.loader"),
        ("def f():\n    from astra_sidecar.compiler import cli\n", "astra_sidecar.compiler"),
        ("from . import x\n", "astra_sidecar.sidecar.auth"),
        ("from ..table import y\n", "astra_sidecar.sidecar.table"),
    ],
)
def test_every_kind_of_import_is_seen(tmp_path: Path, source: str, module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "sidecar" / "auth" / "m.py"
    path.parent.mkdir(parents=True)
    path.write_text(source)
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert [name for _, name in imported_modules(path)] == [module]
