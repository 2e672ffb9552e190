"""Case folders run through the CLI.

tests/cases/valid/NAME/astra.yml compiles to expected.json byte for byte (checked with
`astra compile --check`, the GitOps drift gate). tests/cases/invalid/NAME/astra.yml lints to exactly
expected.txt with exit status `status`; an optional `args` file adds flags, one per line. The case
runs with the folder as working directory and without the credential variables the cases name.

After an intended change, regenerate with `astra compile astra.yml -o expected.json` or
`astra lint $(cat args) astra.yml > expected.txt; echo $? > status` in the folder, and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from astra_sidecar.compiler.schemas import TABLE_SCHEMA, validator
from tests.compiler.helpers import Cli

CASES = Path(__file__).resolve().parents[1] / "cases"
VALID = sorted(p.name for p in (CASES / "valid").iterdir() if p.is_dir())
INVALID = sorted(p.name for p in (CASES / "invalid").iterdir() if p.is_dir())
CASE_VARIABLES = ("MISTRAL_API_KEY", "AWS_REGION", "ASTRA_CASE_TOKEN")


def test_there_are_cases() -> None:
    assert len(VALID) >= 5 and len(INVALID) >= 5


@pytest.mark.parametrize("name", VALID)
def test_valid_case(name: str, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CASES / "valid" / name)
    lint = cli("lint", "--strict", "astra.yml")
    assert (lint.code, lint.out) == (0, "")
    check = cli("compile", "astra.yml", "-o", "expected.json", "--check")
    assert (check.code, check.err) == (0, "expected.json is up to date\n")
    table = json.loads(Path("expected.json").read_text(encoding="utf-8"))
    assert list(validator(TABLE_SCHEMA).iter_errors(table)) == []


@pytest.mark.parametrize("name", INVALID)
def test_invalid_case(name: str, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = CASES / "invalid" / name
    monkeypatch.chdir(folder)
    for variable in CASE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    args = (folder / "args").read_text().split() if (folder / "args").exists() else []
    result = cli("lint", *args, "astra.yml")
    assert result.out == (folder / "expected.txt").read_text(encoding="utf-8")
    assert result.code == int((folder / "status").read_text())
