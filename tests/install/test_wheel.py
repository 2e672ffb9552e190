"""The wheel as a new user gets it: built from this checkout, installed into an empty venv, used from
a folder outside the clone.

Only `astra_sidecar` (and its dist-info) lands in site-packages; the schemas are inside it; every
provider kind but Vertex AI lints, compiles and serves from a plain install; a Vertex AI agent
without the `vertex` extra is a clear diagnostic and a clear start-up error, never a traceback;
with the extra the whole example serves. The venv is built once per session (about a minute:
pip fetches the dependencies from the index).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.processes import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "astra.yml"
VERTEX_HINT = "pip install 'astra-sidecar[vertex]'"


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    workdir: Path

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def env(self) -> dict[str, str]:
        """No keys, no AWS or Google configuration, HOME inside the work folder."""
        return {"PATH": f"{self.venv / 'bin'}:/usr/bin:/bin", "HOME": str(self.workdir), "LANG": "C.UTF-8"}

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, cwd=self.workdir, env=self.env(), capture_output=True, text=True, timeout=120, check=False
        )

    def pip_install(self, spec: str) -> None:
        done = self.run(
            self.bin("python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", spec
        )
        assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("astra_sidecar-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    workdir = base / "work"
    workdir.mkdir()
    result = Installed(wheel, venv, workdir)
    result.pip_install(str(wheel))
    return result


def _top_level(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name.split("/", 1)[0] for name in archive.namelist()}


def test_the_wheel_holds_one_import_root_with_its_schemas(installed: Installed) -> None:
    version = installed.wheel.name.split("-")[1]
    assert _top_level(installed.wheel) == {"astra_sidecar", f"astra_sidecar-{version}.dist-info"}
    with zipfile.ZipFile(installed.wheel) as archive:
        names = set(archive.namelist())
    assert {
        "astra_sidecar/schema/astra.schema.json",
        "astra_sidecar/schema/routing-table.schema.json",
    } <= names


def test_python_dash_m_and_the_command_work_outside_the_clone(installed: Installed) -> None:
    by_module = installed.run(installed.bin("python"), "-m", "astra_sidecar", "--help")
    assert by_module.returncode == 0 and "lint" in by_module.stdout
    where = installed.run(
        installed.bin("python"), "-c", "import astra_sidecar.schema as s; print(s.__path__[0])"
    )
    assert where.stdout.strip().startswith(str(installed.venv)), "the schemas must come from the install"


def test_vertex_without_its_extra_is_a_diagnostic_and_a_clear_start_up_error(installed: Installed) -> None:
    (installed.workdir / "astra.yml").write_text(EXAMPLE.read_text())
    lint = installed.run(installed.bin("astra"), "lint", "--check-env", "astra.yml")
    assert VERTEX_HINT in lint.stdout, lint.stdout
    compiled = installed.run(installed.bin("astra"), "compile", "astra.yml", "-o", "table.json")
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    served = installed.run(installed.bin("astra"), "serve", "astra.yml", "--port", str(free_port()))
    assert served.returncode == 2
    assert VERTEX_HINT in served.stderr and "Traceback" not in served.stderr
    assert all(json.loads(line) for line in served.stderr.splitlines()), "logs are JSON lines"


def _without_vertex(text: str) -> str:
    document = yaml.safe_load(text)
    document["agents"] = [a for a in document["agents"] if "vertex" not in a["model"]]
    return yaml.safe_dump(document, sort_keys=False)


@contextmanager
def _serving(installed: Installed, config: str) -> Iterator[str]:
    """`astra serve` on `config` from the work folder; the base URL once ready, stopped by SIGTERM."""
    (installed.workdir / "served.yml").write_text(config)
    port = free_port()
    process = subprocess.Popen(
        [installed.bin("astra"), "serve", "served.yml", "--port", str(port)],
        cwd=installed.workdir, env=installed.env(), stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: urllib.request.urlopen(base + "/readyz", timeout=2).status == 200), (
            "never ready"
        )
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
        logs = process.stderr.read() if process.stderr else ""
    assert code == 0 and "Traceback" not in logs, logs


def _ask_demo(base: str) -> str:
    body = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "hello"}]}).encode()
    request = urllib.request.Request(base + "/v1/chat/completions", data=body, method="POST")
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    return str(answer["choices"][0]["message"]["content"])


def _agent_ids(base: str) -> set[str]:
    with urllib.request.urlopen(base + "/v1/models", timeout=5) as response:
        return {entry["id"] for entry in json.loads(response.read())["data"]}


def test_every_provider_but_vertex_serves_from_a_plain_install(installed: Installed) -> None:
    config = _without_vertex(EXAMPLE.read_text())
    agents = yaml.safe_load(config)["agents"]
    assert {"openai", "claude", "gemini", "bedrock", "ollama", "vllm", "mock"} <= {
        a["model"]["provider"] for a in agents
    }
    with _serving(installed, config) as base:
        assert _agent_ids(base) == {a["id"] for a in agents}
        assert _ask_demo(base)


# After the tests above (pytest keeps the file's order): they need the venv without the extra.
def test_with_the_vertex_extra_the_whole_example_serves(installed: Installed) -> None:
    installed.pip_install(f"{installed.wheel}[vertex]")
    agents = yaml.safe_load(EXAMPLE.read_text())["agents"]
    assert any("vertex" in a["model"] for a in agents)
    with _serving(installed, EXAMPLE.read_text()) as base:
        assert _agent_ids(base) == {a["id"] for a in agents}
        assert _ask_demo(base)


def test_nothing_of_the_clone_is_on_the_path(installed: Installed) -> None:
    assert str(ROOT) not in os.pathsep.join(installed.env().values())
    found = installed.run(
        installed.bin("python"), "-c", "import astra_sidecar; print(astra_sidecar.__file__)"
    )
    assert not found.stdout.strip().startswith(str(ROOT))
