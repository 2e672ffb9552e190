"""YAML loading with positions, and one test per kind of bad input."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from astra_sidecar.compiler import yamlpos
from astra_sidecar.compiler.yamlpos import Pos, load_bytes, load_text, read_source


def _codes(text: str | bytes) -> list[str]:
    raw = text.encode() if isinstance(text, str) else text
    return [f"{d.line}:{d.col}: {d.code} {d.message}" for d in load_bytes(raw, "f.yml").diagnostics]


def test_positions_of_keys_and_values() -> None:
    doc = load_text("a: 1\nb:\n  c: [x, 'y']\n  d:\n", "f.yml").document
    assert doc is not None
    assert doc.data == {"a": 1, "b": {"c": ["x", "y"], "d": None}}
    assert doc.key_pos(("b", "c")) == Pos(3, 3)
    assert doc.value_pos(("b", "c")) == Pos(3, 6)
    assert doc.value_pos(("b", "c", 1)) == Pos(3, 10)
    assert doc.value_pos(("b", "d")) == Pos(4, 3), "an empty value is shown at its key"
    assert doc.value_pos(("b", "nope", 7)) == Pos(3, 3), "unknown paths fall back to the nearest ancestor"
    assert doc.key_pos(()) == Pos(1, 1)


def test_scalars_keep_json_types_and_timestamps_stay_text() -> None:
    doc = load_text("i: 0x10\nf: 1.5\nb: yes\nn: ~\nt: 2024-01-02\ns: '7'\n", "f.yml").document
    assert doc is not None
    assert doc.data == {"i": 16, "f": 1.5, "b": True, "n": None, "t": "2024-01-02", "s": "7"}


def test_merge_keys_apply_and_explicit_keys_win() -> None:
    doc = load_text("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n", "f.yml").document
    assert doc is not None
    assert doc.data["use"] == {"y": 3, "x": 1}
    assert doc.value_pos(("use", "x")) == Pos(1, 14), "merged values point at their definition"


def test_duplicate_key_is_reported_at_the_second_key() -> None:
    assert _codes("a: 1\nb: 2\na: 3\n") == ["3:1: AST008 duplicate key 'a' (first defined at line 1); the first one is used"]
    doc = load_text("a: 1\na: 3\n", "f.yml").document
    assert doc is not None and doc.data == {"a": 1}


def test_malformed_yaml() -> None:
    assert _codes("a: [1, 2\nb: 3\n") == [
        "2:2: AST005 did not find expected ',' or ']' (while parsing a flow sequence at line 1, column 4)"
    ]


def test_multiple_documents_are_a_syntax_error() -> None:
    assert [c.split(" ")[1] for c in _codes("a: 1\n---\nb: 2\n")] == ["AST005"]


def test_tab_indentation() -> None:
    assert _codes("agents:\n  a:\n\t  b: 1\n") == ["3:1: AST006 tab character in indentation; YAML indents with spaces only"]


def test_non_mapping_root() -> None:
    assert _codes("- a\n- b\n") == ["1:1: AST010 the top level is a list; expected a mapping with 'agents'"]
    assert _codes("just text\n") == ["1:1: AST010 the top level is a single value; expected a mapping with 'agents'"]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(text: str) -> None:
    assert _codes(text) == ["1:1: AST004 the file has no YAML content; expected a mapping with 'agents'"]


def test_binary_file() -> None:
    assert _codes(b"a: 1\nb: \x00\x01\x02") == ["2:4: AST003 binary file (contains NUL bytes); expected YAML text"]


def test_invalid_utf8() -> None:
    assert _codes(b"a: 1\nb: caf\xe9\n") == ["2:7: AST003 not UTF-8 text: invalid byte 0xe9"]


def test_control_character() -> None:
    assert _codes("a: 1\nb: \x07\n") == ["2:4: AST003 unacceptable character #x0007 (control characters are not allowed)"]


def test_utf8_bom_is_accepted() -> None:
    doc = load_bytes(b"\xef\xbb\xbfa: 1\n", "f.yml").document
    assert doc is not None and doc.data == {"a": 1}


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefghi", "bcdefghij", strict=False):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    start = time.perf_counter()
    codes = _codes("\n".join(lines) + "\n")
    assert time.perf_counter() - start < 1.0
    assert codes == ["6:4: AST007 YAML aliases expand to more than 500000 nodes (an alias bomb?); refusing to load"]


def test_modest_aliases_are_fine() -> None:
    doc = load_text("d: &d {x: 1}\nu: [*d, *d]\n", "f.yml").document
    assert doc is not None and doc.data["u"] == [{"x": 1}, {"x": 1}]


def test_recursive_alias_is_refused() -> None:
    assert _codes("a: &a [1, *a]\n") == ["1:4: AST007 recursive YAML alias (a node contains itself); refusing to load"]


def test_deep_nesting_is_refused_before_composing() -> None:
    # libyaml's composer recurses in C: 100k levels would crash the interpreter, not raise.
    # The root mapping is level 1, so the 64th bracket (column 3 + 64) is one level too many.
    depth = 100_000
    assert _codes("a: " + "[" * depth + "]" * depth + "\n") == [
        f"1:{3 + yamlpos.MAX_DEPTH}: AST007 nesting deeper than {yamlpos.MAX_DEPTH} levels; refusing to load"
    ]


def test_aliases_that_nest_too_deep_are_refused() -> None:
    lines = ["a0: &a0 [x]"]
    for i in range(1, 5):
        lines.append(f"a{i}: &a{i} " + "[" * 40 + f"*a{i - 1}" + "]" * 40)
    assert [c.split(" ")[1] for c in _codes("\n".join(lines) + "\n")] == ["AST007"]


def test_unsupported_tag() -> None:
    assert _codes("a: !env HOME\n") == ["1:4: AST009 unsupported YAML tag !env"]
    assert _codes("a: !!binary aGk=\n") == ["1:4: AST009 unsupported YAML tag !!binary"]
    assert _codes("a: !!set {x}\n") == ["1:4: AST009 unsupported YAML tag !!set"]


@pytest.mark.parametrize(
    ("text", "value", "tag"), [("a: !!int abc\n", "abc", "int"), ("a: !!int\n", "", "int"), ("a: !!bool maybe\n", "maybe", "bool")]
)
def test_bad_explicit_scalar_tag(text: str, value: str, tag: str) -> None:
    assert _codes(text) == [f"1:4: AST009 cannot read '{value}' as !!{tag}"]


def test_complex_key() -> None:
    assert _codes("? [a, b]\n: 1\n") == ["1:3: AST009 complex mapping keys are not supported; keys must be plain text"]


def test_non_finite_number() -> None:
    assert _codes("a: .inf\n") == ["1:4: AST009 .inf is not a finite number; JSON cannot represent it"]


def test_non_string_keys_become_their_text() -> None:
    doc = load_text("1: a\ntrue: b\n", "f.yml").document
    assert doc is not None and doc.data == {"1": "a", "true": "b"}


def test_unreadable_path(tmp_path: Path) -> None:
    raw, problems = read_source(str(tmp_path / "missing.yml"))
    assert raw is None
    assert [f"{d.line}:{d.col}: {d.code} {d.message}" for d in problems] == [
        "1:1: AST001 cannot read file: No such file or directory"
    ]


def test_directory_is_unreadable(tmp_path: Path) -> None:
    raw, problems = read_source(str(tmp_path))
    assert raw is None and [d.code for d in problems] == ["AST001"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "secret.yml"
    path.write_text("a: 1\n")
    path.chmod(0)
    raw, problems = read_source(str(path))
    assert raw is None and [d.message for d in problems] == ["cannot read file: Permission denied"]


def test_huge_file(tmp_path: Path) -> None:
    path = tmp_path / "huge.yml"
    with path.open("wb") as fh:
        fh.truncate(yamlpos.MAX_FILE_BYTES + 1)
    raw, problems = read_source(str(path))
    assert raw is None
    assert [f"{d.code} {d.message}" for d in problems] == [
        f"AST002 file is larger than {yamlpos.MAX_FILE_BYTES} bytes; refusing to load it"
    ]


def test_file_at_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yml"
    path.write_bytes(b"#" * yamlpos.MAX_FILE_BYTES)
    raw, problems = read_source(str(path))
    assert raw is not None and len(raw) == yamlpos.MAX_FILE_BYTES and problems == ()


def test_text_positions_in_block_and_inline_scalars() -> None:
    text = "lit: |\n  one\n    two\ninline: 'a {{ b }}'\nfold: >\n  x\n  y\nplain: a b\n"
    doc = load_text(text, "f.yml").document
    assert doc is not None
    assert doc.text_pos(("lit",), 2, 3) == Pos(3, 5)
    assert doc.text_pos(("lit",), 1, None) == Pos(2, 3)
    assert doc.text_pos(("inline",), 1, 6) == Pos(4, 15)
    assert doc.text_pos(("fold",), 2, 1) == Pos(5, 7), "folded scalars point at their start"
    assert doc.text_pos(("plain",), 1, 3) == Pos(8, 10)
