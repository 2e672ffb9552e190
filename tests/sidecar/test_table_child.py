"""`astra serve`'s table loader (`astra_sidecar/table_child.py`): the compile runs in a child
process, the sidecar gets the same table or the same diagnostics, and never imports the compiler."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from astra_sidecar.compiler.loader import CompileError, compile_file, load_routing_table
from astra_sidecar.compiler.table import TableLoadError, dump_table_json
from astra_sidecar.table_child import EarlyLoader, load_in_child

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "astra.yml"

BROKEN = """\
version: 1
agents:
  demo:
    model: {provider: mock, modelId: m}
    temperature: 9
"""


def test_the_child_compiles_the_table_the_loader_would() -> None:
    assert load_in_child(str(EXAMPLE)).hash == load_routing_table(str(EXAMPLE)).hash


def test_a_compiled_table_is_checked_and_loaded(tmp_path: Path) -> None:
    compiled = tmp_path / "routing-table.json"
    table, _ = compile_file(str(EXAMPLE))
    assert table is not None
    compiled.write_text(dump_table_json(table))
    assert load_in_child(str(compiled)).hash == load_routing_table(str(EXAMPLE)).hash


def test_diagnostics_come_back_with_their_positions(tmp_path: Path) -> None:
    source = tmp_path / "astra.yml"
    source.write_text(BROKEN)
    with pytest.raises(CompileError) as compiled_here:
        load_routing_table(str(source))
    with pytest.raises(TableLoadError) as from_child:
        load_in_child(str(source))
    assert from_child.value.reasons == compiled_here.value.reasons
    assert any(f"{source}:5:" in reason for reason in from_child.value.reasons)
    assert str(from_child.value) == str(compiled_here.value)


def test_a_missing_file_is_a_load_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(TableLoadError, match=r"missing\.yml"):
        load_in_child(str(tmp_path / "missing.yml"))


def test_a_child_that_dies_is_a_load_error_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(TableLoadError, match=r"the compiler process failed \(exit 1\)"):
        load_in_child(str(EXAMPLE))


_SERVING = textwrap.dedent("""
    import json, sys
    from astra_sidecar.cli import verbs_for
    from astra_sidecar.sidecar.app import create_app
    from astra_sidecar.table_child import load_in_child
    verbs_for(["serve"])
    create_app(load_in_child(sys.argv[1]), env={})
    heavy = ("yaml", "jsonschema", "referencing", "jinja2", "astra_sidecar.compiler.loader", "astra_sidecar.compiler.cli")
    print(json.dumps(sorted(m for m in sys.modules if m.startswith(heavy))))
""")


def test_the_serving_process_imports_no_compiler(tmp_path: Path) -> None:
    source = tmp_path / "astra.yml"  # no systemPrompt: the sidecar renders those with Jinja2
    source.write_text("version: 1\nagents:\n  demo: {model: {provider: mock, modelId: m}}\n")
    done = subprocess.run(
        [sys.executable, "-c", _SERVING, str(source)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_the_early_loader_answers_its_first_load_from_the_child_it_started(tmp_path: Path) -> None:
    load = EarlyLoader()
    load.start(str(EXAMPLE))
    assert load(str(EXAMPLE)).hash == load_routing_table(str(EXAMPLE)).hash
    source = tmp_path / "astra.yml"
    source.write_text(BROKEN)
    with pytest.raises(TableLoadError, match=r"astra\.yml:5:"):  # a reload: a child of its own
        load(str(source))


def test_an_early_load_of_another_path_is_dropped_for_the_path_asked(tmp_path: Path) -> None:
    load = EarlyLoader()
    load.start(str(tmp_path / "not-this.yml"))
    assert load(str(EXAMPLE)).hash == load_routing_table(str(EXAMPLE)).hash
