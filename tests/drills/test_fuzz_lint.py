"""Fuzzing: hostile astra.yml for the compiler.

YAML-ish text, structured near-valid configs (mutations of the shipped examples) and hostile
YAML (alias bombs, deep nesting) through `astra lint` in every output format: it never raises,
exits 0, 1 or 2, and prints well-formed diagnostics; hostile YAML is refused fast. The ingress
routes' fuzz targets are in `tests/drills/test_fuzz.py`.

Size: a few hundred examples per test in CI; `ASTRA_FUZZ_EXAMPLES=10000` (see `scripts/fuzz`)
for the long run. `ASTRA_FUZZ_REPORT=path` writes the number of cases run per target as JSON
(`tests.drills.fuzz_settings`).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from astra_sidecar.compiler.cli import main as astra
from astra_sidecar.compiler.diagnostics import CODES
from tests.drills import fuzz_strategies as fs
from tests.drills.fuzz_settings import CASES, fuzz, write_report

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def _report_cases() -> Iterator[None]:
    yield
    write_report()


# --- the compiler: astra lint never raises, exits 0/1/2, prints well-formed diagnostics ----------

_TEXT_LINE = re.compile(
    r"^(?P<file>.+?):(?P<line>[1-9]\d*):(?P<col>[1-9]\d*): (?P<sev>error|warning) (?P<code>AST\d{3}) \S"
)
_GITHUB_LINE = re.compile(
    r"^::(error|warning) file=[^,]*,line=[1-9]\d*,col=[1-9]\d*,title=(?P<code>AST\d{3})::"
)


def lint(path: Path, fmt: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = astra(["lint", "--format", fmt, str(path)])
    return status, out.getvalue()


def check_lint(tmp: Path, raw: bytes, fmt: str) -> None:
    """`astra lint --format fmt` on `raw`: never raises, prints well-formed diagnostics, and exits
    2 on an unreadable file, else 1 exactly when there are errors, else 0."""
    path = tmp / "astra.yml"
    path.write_bytes(raw)
    status, out = lint(path, fmt)
    codes = _well_formed(fmt, out)
    errors = any(CODES[c].severity.value == "error" for c in codes)
    expected = 2 if "AST001" in codes else 1 if errors else 0
    assert status == expected, (fmt, status, out)


formats = st.sampled_from(["text", "json", "github", "sarif"])


def _well_formed(fmt: str, out: str) -> list[str]:
    """The codes of the diagnostics in `out`, asserting each is well formed in format `fmt`."""
    if fmt == "text":
        matches = [_TEXT_LINE.match(line) for line in out.splitlines()]
        assert all(
            m and m["code"] in CODES and m["sev"] == CODES[m["code"]].severity.value for m in matches
        ), out
        return [m["code"] for m in matches if m]
    if fmt == "github":
        matches = [_GITHUB_LINE.match(line) for line in out.split("\n")[:-1]]
        assert all(m and m["code"] in CODES for m in matches), out
        return [m["code"] for m in matches if m]
    data = json.loads(out)
    if fmt == "json":
        for d in data:
            assert d["code"] in CODES and d["line"] >= 1 and d["column"] >= 1, d
            assert d["severity"] == CODES[d["code"]].severity.value and isinstance(d["message"], str)
        return [d["code"] for d in data]
    results = data["runs"][0]["results"]
    for r in results:
        assert r["ruleId"] in CODES and r["level"] == CODES[r["ruleId"]].severity.value, r
        region = r["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1, r
    return [r["ruleId"] for r in results]


YAML_TOKENS = [
    *"ab:- \n\n\t{}[],&*!|>'\"#%@`?~.0123",
    "\x00",
    "\ufeff",
    "\u2028",
    "<<: ",
    "*a",
    "&a ",
    "!!python/object ",
    "!!binary ",
    "--- ",
    "...",
    "agents:",
    "model:",
    "provider: ",
    "openai",
    "mock",
    "fallback:",
    "  - ",
    "    ",
    "{{",
    "}}",
    "x-d: ",
    "version: 1\n",
    "modelId: m",
    "endpoint: http://h:1",
    "settings:",
    "retry: {maxRetries: ",
    "99999999999999999999",
    "1e400",
    ".nan",
]


@fuzz(300)
@given(st.lists(st.sampled_from(YAML_TOKENS), max_size=60).map("".join), formats)
def test_lint_on_yaml_ish_text(tmp_path: Path, text: str, fmt: str) -> None:
    CASES["compiler: YAML-ish text"] += 1
    check_lint(tmp_path, text.encode(), fmt)


@fuzz(150)
@given(st.binary(max_size=256), formats)
def test_lint_on_random_bytes(tmp_path: Path, raw: bytes, fmt: str) -> None:
    CASES["compiler: random bytes"] += 1
    check_lint(tmp_path, raw, fmt)


def _examples() -> list[Any]:
    docs = []
    for path in sorted((ROOT / "examples").glob("*.yml")):
        with contextlib.suppress(yaml.YAMLError):
            doc = yaml.safe_load(path.read_text())
            if isinstance(doc, dict):
                docs.append(doc)
    return docs


EXAMPLES = _examples()
_replacements = st.one_of(
    fs.json_values,
    st.sampled_from([None, "", 0, -1, 1.5, True, [], {}, "openai", "mock", "http://h:1", 10**12, "{{ x }}"]),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


@st.composite
def near_valid_configs(draw: st.DrawFn) -> Any:
    """A shipped example with a few nodes replaced, deleted or duplicated."""
    doc = json.loads(json.dumps(draw(st.sampled_from(EXAMPLES))))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)[1:]
        if not paths:
            break
        where = draw(st.sampled_from(paths))
        parent = doc
        for key in where[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "replace", "delete", "rename"]))
        key = where[-1]
        if action == "replace":
            parent[key] = draw(_replacements)
        elif action == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from([f"{key}x", str(key).upper(), "x-extra", "", "<<"]))] = parent.pop(
                key
            )
    return doc


@fuzz(200)
@given(near_valid_configs(), st.sampled_from(["block", "flow", "json"]), formats)
def test_lint_on_near_valid_configs(tmp_path: Path, doc: Any, style: str, fmt: str) -> None:
    CASES["compiler: near-valid configs"] += 1
    if style == "json":
        raw = json.dumps(doc).encode()
    else:
        raw = yaml.safe_dump(doc, sort_keys=False, default_flow_style=style == "flow").encode()
    check_lint(tmp_path, raw, fmt)


def _alias_bomb(levels: int, width: int) -> str:
    lines = ["version: 1", 'x-a0: &a0 ["lol"]']
    for level in range(1, levels + 1):
        refs = ", ".join(f"*a{level - 1}" for _ in range(width))
        lines.append(f"x-a{level}: &a{level} [{refs}]")
    lines.append("agents: {a: {model: {provider: mock, modelId: m}}}")
    return "\n".join(lines) + "\n"


HOSTILE = {
    "billion laughs": _alias_bomb(9, 10),
    "just under the expansion limit": _alias_bomb(5, 13),
    "wide alias fan-out": _alias_bomb(2, 700),
    "recursive alias": "version: 1\nx-a: &a [*a]\nagents: {a: {model: {provider: mock, modelId: m}}}\n",
    "recursive merge": "version: 1\nx-a: &a {<<: *a}\nagents: {a: {model: {provider: mock, modelId: m}}}\n",
    "deep flow nesting": "version: 1\nx-a: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "deep block nesting": "version: 1\n" + "".join(" " * i + f"k{i}:\n" for i in range(2_000)),
    "deep flow mappings": "version: 1\nx-a: " + "{a: " * 50_000 + "1" + "}" * 50_000 + "\n",
    "unclosed deep nesting": "version: 1\nx-a: " + "[" * 200_000,
    "many documents": "---\nversion: 1\n" * 10_000,
    "many anchors": "version: 1\n" + "".join(f"x-{i}: &a{i} {i}\n" for i in range(20_000)),
    "long line": "version: 1\nx-a: " + "a" * 3_000_000 + "\n",
}


#: Refused outright as hostile structure (AST007); the others are refused or compiled, but fast.
REFUSED = frozenset(
    {"billion laughs", "recursive alias", "recursive merge", "deep flow nesting", "deep block nesting"}
    | {"deep flow mappings"}
)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_yaml_is_refused_fast(tmp_path: Path, name: str) -> None:
    """Refused (exit 1) or harmless. The time bound is a hang guard, not a speed target: each case
    takes about 0.1 s here, an unguarded expansion takes minutes or exhausts memory."""
    CASES["compiler: hostile YAML"] += 1
    path = tmp_path / "astra.yml"
    path.write_text(HOSTILE[name])
    started = time.monotonic()
    status, out = lint(path, "json")
    elapsed = time.monotonic() - started
    assert status in (0, 1), status
    codes = _well_formed("json", out)
    assert elapsed < 20.0, f"{name}: {elapsed:.2f} s"
    if name in REFUSED:
        assert "AST007" in codes and status == 1, out
