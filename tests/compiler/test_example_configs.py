"""The shipped examples: clean, complete, and one broken file per diagnostic code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from astra_sidecar.compiler.diagnostics import CODES
from astra_sidecar.compiler.loader import compile_file
from astra_sidecar.compiler.providers import PROVIDERS
from astra_sidecar.compiler.schemas import TABLE_SCHEMA, validator
from astra_sidecar.compiler.table import Json
from tests.compiler.helpers import Cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
INVALID = sorted((EXAMPLES / "invalid").glob("*.yml"))
#: Codes no example file can show: an unreadable or over-large file, and damaged compiled tables.
# AST262 (Redis configured, redis-py missing) cannot show where the test extra installs redis-py.
NOT_SHOWN_BY_A_FILE = {"AST001", "AST002", "AST262", "AST301", "AST302"}


def _table(name: str) -> Json:
    table, found = compile_file(str(EXAMPLES / name))
    assert table is not None and found == [], [str(d) for d in found]
    assert list(validator(TABLE_SCHEMA).iter_errors(table)) == []
    return table


@pytest.mark.parametrize("name", ["astra.yml", "astra.mapping.yml"])
def test_example_is_clean_even_when_strict(name: str, cli: Cli) -> None:
    result = cli("lint", "--strict", str(EXAMPLES / name))
    assert (result.code, result.out) == (0, "")
    _table(name)


def test_main_example_covers_every_provider() -> None:
    table = _table("astra.yml")
    assert {c["provider"] for c in table["clusters"].values()} == set(PROVIDERS)
    gemini = [c for c in table["clusters"].values() if c["provider"] == "gemini"]
    assert sorted(c["credentials"]["mode"] for c in gemini) == ["env", "env", "google"]
    assert any(c["provider"] == "vllm" and c["baseUrl"] for c in table["clusters"].values())


def test_main_example_has_a_demo_and_a_fault_drill() -> None:
    table = _table("astra.yml")
    demo = table["clusters"][table["agents"]["demo"]["plan"][0]]
    assert demo["provider"] == "mock" and demo["mock"]["status"] is None
    primary, fallback = (table["clusters"][key] for key in table["agents"]["drill"]["plan"])
    assert (primary["mock"]["status"], primary["mock"]["failRate"]) == (503, 1.0)
    assert fallback["provider"] == "mock" and fallback["mock"]["status"] is None


def test_examples_show_both_agent_forms() -> None:
    assert re.search(r"^agents:\n  - id: ", (EXAMPLES / "astra.yml").read_text(), re.M)
    assert re.search(r"^agents:\n  [a-z]+:\n", (EXAMPLES / "astra.mapping.yml").read_text(), re.M)


def _declared(path: Path) -> tuple[str, list[str]]:
    header = path.read_bytes().split(b"\n", 1)[0].decode()
    code = re.match(r"# (AST\d{3})\b", header)
    assert code, f"{path.name} must start with '# ASTxxx: …'"
    return code[1], ["--check-env"] if "--check-env" in header else []


def test_every_code_has_an_invalid_example() -> None:
    shown = {_declared(path)[0] for path in INVALID}
    assert shown == set(CODES) - NOT_SHOWN_BY_A_FILE
    assert len(shown) == len(INVALID), "one file per code"


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_example_shows_exactly_its_code(path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    code, flags = _declared(path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = cli("lint", *flags, str(path))
    assert [line.split(" ")[2] for line in result.out.splitlines()] == [code]
    assert result.code == (1 if CODES[code].severity.value == "error" else 0)
