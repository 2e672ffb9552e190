"""load_routing_table / compile_file: the sidecar's entry points."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from astra_sidecar.compiler import schemas
from astra_sidecar.compiler.loader import CompileError, compile_file, load_routing_table
from astra_sidecar.compiler.table import RoutingTable, content_hash, dump_table_json
from tests.compiler.helpers import Write

CONFIG = "agents:\n  - id: demo\n    model: {provider: mock, modelId: echo}\n"


def test_loads_an_astra_yml(write: Write) -> None:
    table = load_routing_table(str(write(CONFIG)))
    assert isinstance(table, RoutingTable)
    assert table.agents["demo"].plan == ("mock:echo:mock://local",)
    assert table.clusters["mock:echo:mock://local"].mock is not None


def test_loads_a_compiled_table_identically(write: Write) -> None:
    source = write(CONFIG)
    data, found = compile_file(str(source))
    assert data is not None and found == []
    compiled = write(dump_table_json(data), "routing-table.json")
    assert load_routing_table(str(compiled)) == load_routing_table(str(source))


def test_errors_raise_compile_error_with_diagnostics(write: Write) -> None:
    path = write("agents:\n  - id: demo\n    model: {provider: mokc, modelId: echo}\n")
    with pytest.raises(CompileError) as caught:
        load_routing_table(str(path))
    assert [(d.line, d.col, d.code) for d in caught.value.diagnostics] == [(3, 23, "AST202")]
    assert str(caught.value) == f"{path}:3:23: error AST202 unknown provider 'mokc'; did you mean 'mock'?"


def test_warnings_do_not_stop_loading(write: Write) -> None:
    # With the default budget a second fallback starts past the deadline: AST214.
    path = write("agents:\n  - id: a\n    model: {provider: mock, modelId: m, "
                 "fallback: [{provider: mock, modelId: n}, {provider: mock, modelId: o}]}\n")
    assert compile_file(str(path))[1][0].code == "AST214"
    assert load_routing_table(str(path)).agents["a"].plan == (
        "mock:m:mock://local", "mock:n:mock://local", "mock:o:mock://local")


def test_unreadable_path_raises_compile_error(tmp_path: Path) -> None:
    with pytest.raises(CompileError) as caught:
        load_routing_table(str(tmp_path / "nope.yml"))
    assert [d.code for d in caught.value.diagnostics] == ["AST001"]


def test_compile_file_reports_unreadable_path(tmp_path: Path) -> None:
    table, found = compile_file(str(tmp_path / "nope.yml"))
    assert table is None and [d.code for d in found] == ["AST001"]


def _position(text: str, needle: str) -> str:
    """`line:col` of the value after `needle` (a JSON key) in `text`."""
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return f"{number}:{line.index(needle) + len(needle) + 2}"
    raise AssertionError(needle)


def _compiled(write: Write) -> dict[str, object]:
    data, _ = compile_file(str(write(CONFIG)))
    assert data is not None
    return data


def test_table_that_breaks_its_schema(write: Write) -> None:
    data = _compiled(write)
    data["agents"]["demo"]["requestTimeoutMs"] = "soon"  # type: ignore[index]
    text = dump_table_json(data)
    path = write(text, "table.json")
    with pytest.raises(CompileError) as caught:
        load_routing_table(str(path))
    where = _position(text, '"requestTimeoutMs":')
    assert [str(d) for d in caught.value.diagnostics] == [
        f"{path}:{where}: error AST301 agents.demo.requestTimeoutMs: 'soon' is not of type 'integer'"
    ]


def test_table_plan_must_name_known_clusters(write: Write) -> None:
    data = _compiled(write)
    data["agents"]["demo"]["plan"] = ["ghost"]  # type: ignore[index]
    data["hash"] = content_hash(data)
    text = dump_table_json(data)
    path = write(text, "table.json")
    with pytest.raises(CompileError) as caught:
        load_routing_table(str(path))
    ghost = _position(text, '"plan": [').split(":")[0]
    assert [str(d) for d in caught.value.diagnostics] == [
        f"{path}:{int(ghost) + 1}:9: error AST301 agents.demo.plan[0]: unknown cluster 'ghost'"
    ]


def test_table_edited_by_hand_fails_its_hash(write: Write) -> None:
    data = _compiled(write)
    data["agents"]["demo"]["tier"] = "gold"  # type: ignore[index]
    text = dump_table_json(data)
    path = write(text, "table.json")
    with pytest.raises(CompileError) as caught:
        load_routing_table(str(path))
    where = _position(text, '"hash":')
    assert [str(d) for d in caught.value.diagnostics] == [
        f"{path}:{where}: error AST302 hash: the table's content does not match its hash (edited by hand?)"
    ]


def test_flow_style_yaml_config_is_not_mistaken_for_a_table(write: Write) -> None:
    path = write('{"agents": {"demo": {"model": {"provider": "mock", "modelId": "echo"}}}}', "astra.json")
    assert list(load_routing_table(str(path)).agents) == ["demo"]


def test_schema_files_are_found_beside_the_compiler_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed, compiler/ and schema/ are siblings under astra_sidecar/; in a checkout, at the
    repository root. Either way the schema is the `schema` folder next to the package."""
    package, beside = tmp_path / "compiler", tmp_path / "schema"
    package.mkdir()
    beside.mkdir()
    (beside / "x.json").write_text(json.dumps({"where": "beside"}))
    monkeypatch.setattr(schemas, "_HERE", package)
    assert schemas.schema_file("x.json") == beside / "x.json"
    with pytest.raises(FileNotFoundError):
        schemas.schema_file("missing.json")
