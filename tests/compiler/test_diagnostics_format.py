"""Diagnostics as values, and their four output formats."""

from __future__ import annotations

import json
import re
from pathlib import Path

from astra_sidecar.compiler.diagnostics import (
    CODES,
    Diagnostic,
    Severity,
    format_github,
    format_json,
    format_sarif,
    format_text,
    has_errors,
)

E1 = Diagnostic("b.yml", 3, 1, "AST101", "unknown key 'x'")
E2 = Diagnostic("a.yml", 10, 2, "AST202", "unknown provider 'y'")
W1 = Diagnostic("a.yml", 2, 5, "AST214", "slow\nplan 100%")


def test_text_form_and_severity_from_the_code() -> None:
    assert str(E1) == "b.yml:3:1: error AST101 unknown key 'x'"
    assert (W1.severity, W1.is_error, E1.severity) == (Severity.WARNING, False, Severity.ERROR)


def test_sorting_is_by_file_then_position() -> None:
    assert sorted([E1, E2, W1]) == [W1, E2, E1]


def test_has_errors() -> None:
    assert has_errors([W1, E1]) and not has_errors([W1]) and not has_errors([])


def test_codes_are_stable_and_well_formed() -> None:
    assert all(len(code) == 6 and code.startswith("AST") and code[3:].isdigit() for code in CODES)
    assert [c for c, info in CODES.items() if info.severity is Severity.WARNING] == [
        "AST208", "AST214", "AST215", "AST216", "AST230", "AST233", "AST236", "AST237",
        "AST240", "AST241", "AST242", "AST243", "AST260", "AST265",
        "AST269", "AST270"
    ]


def test_format_text() -> None:
    assert format_text([E2, E1]) == "a.yml:10:2: error AST202 unknown provider 'y'\nb.yml:3:1: error AST101 unknown key 'x'\n"
    assert format_text([]) == ""


def test_format_json() -> None:
    assert json.loads(format_json([W1])) == [
        {"file": "a.yml", "line": 2, "column": 5, "severity": "warning", "code": "AST214", "message": "slow\nplan 100%"}
    ]
    assert format_json([]) == "[]\n"


def test_format_github_escapes_data() -> None:
    assert format_github([W1]) == "::warning file=a.yml,line=2,col=5,title=AST214::slow%0Aplan 100%25\n"


def test_format_sarif_indexes_rules() -> None:
    run = json.loads(format_sarif([E1, E2, W1]))["runs"][0]
    assert [rule["id"] for rule in run["tool"]["driver"]["rules"]] == ["AST101", "AST202", "AST214"]
    assert [(r["ruleId"], r["ruleIndex"], r["level"]) for r in run["results"]] == [
        ("AST101", 0, "error"), ("AST202", 1, "error"), ("AST214", 2, "warning")]


def test_the_reference_lists_every_code() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (AST\d{3}) \| (error|warning) \| (.+) \|$", text, re.M)
    assert rows == [(code, info.severity.value, info.title) for code, info in CODES.items()]
