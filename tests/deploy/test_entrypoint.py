"""The image's command, run outside a container the way the image runs it: a non-root user, the
table in a read-only directory, HOME and the working directory unwritable, only TMPDIR writable.
Ready and live, the HEALTHCHECK passes, and SIGTERM drains a request in flight, then exits 0."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from astra_sidecar.compiler.loader import compile_file
from astra_sidecar.compiler.table import dump_table_json
from tests.deploy.repo_files import default_command, parse_containerfile
from tests.processes import free_port, wait_until

PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER = 24, 1, 2, 3
CONFIG = """\
version: 1
settings: {drainGraceMs: 5000}
agents:
  - id: demo
    model: {provider: mock, modelId: echo}
  - id: slow
    model: {provider: mock, modelId: slow, mock: {reply: finished, latencyMs: 1500}}
"""
READ_ONLY_DIR = stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
READ_ONLY_FILE = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _files_under(*roots: Path) -> set[Path]:
    return {Path(d) / f for root in roots for d, _, files in os.walk(root) for f in files} | set(roots)


class Box:
    """Directories laid out like the container's: /etc/astra (read-only), HOME and cwd (read-only),
    and a writable /tmp."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.etc = base / "etc-astra"
        self.home = base / "home"
        self.tmp = base / "tmp"
        for path in (self.etc, self.home, self.tmp):
            path.mkdir()
        table = compile_text(CONFIG, base / "astra.yml")
        self.table_path = self.etc / "routing-table.json"
        self.table_path.write_text(dump_table_json(table))
        self.hash: str = table["hash"]
        self.table_path.chmod(READ_ONLY_FILE)
        for path in (self.etc, self.home, base):
            path.chmod(READ_ONLY_DIR)
        self.tmp.chmod(0o1777)


def compile_text(text: str, path: Path) -> dict[str, Any]:
    path.write_text(text)
    table, diagnostics = compile_file(str(path))
    assert table is not None, diagnostics
    return table


@pytest.fixture
def box() -> Iterator[Box]:
    base = Path(tempfile.mkdtemp(prefix="astra-ro-"))
    base.chmod(0o755)
    try:
        yield Box(base)
    finally:
        for directory, _, _ in os.walk(base):
            os.chmod(directory, 0o755)
        shutil.rmtree(base)


def _command(box: Box, port: int) -> list[str]:
    """The image's ENTRYPOINT + CMD, with the table path, the address and the port of this test."""
    argv = default_command()
    assert argv[:3] == ["astra", "serve", "/etc/astra/routing-table.json"]
    replaced = {
        "/etc/astra/routing-table.json": str(box.table_path),
        "0.0.0.0": "127.0.0.1",
        "8080": str(port),
    }
    return [sys.executable, "-m", "astra_sidecar", *(replaced.get(a, a) for a in argv[1:])]


def _image_env(box: Box) -> dict[str, str]:
    """The final stage's ENV, with HOME and TMPDIR pointed into the box."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HOME", "TMP"))}
    final = parse_containerfile()[1][-1]
    for instruction in final.all("ENV"):
        for pair in instruction.args.split():
            key, _, value = pair.partition("=")
            if key.startswith("PYTHON"):
                env[key] = value
    return {**env, "HOME": str(box.home), "TMPDIR": str(box.tmp)}


def _without_root_file_powers() -> None:
    """In the child, before exec: drop the capabilities that let root ignore file modes, so the
    read-only directories are read-only for the sidecar even when the tests run as root."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _start(box: Box, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        _command(box, port),
        cwd=box.home,
        env=_image_env(box),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_without_root_file_powers if os.geteuid() == 0 else None,
    )


def _ask(base: str, agent: str, results: list[tuple[int, str]]) -> None:
    body = json.dumps({"model": agent, "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = urllib.request.Request(
        base + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        results.append((response.status, json.loads(response.read())["choices"][0]["message"]["content"]))


def _healthcheck(port: int) -> int:
    """The image's HEALTHCHECK command, pointed at this test's port."""
    argv = json.loads(parse_containerfile()[1][-1].last("HEALTHCHECK").args.partition("CMD ")[2])
    code = argv[2].replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    return subprocess.run([sys.executable, "-c", code], timeout=10).returncode


def test_the_image_command_serves_from_a_read_only_tree_and_drains_on_sigterm(box: Box) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    before = _files_under(box.etc, box.home)
    process = _start(box, port)
    try:
        assert wait_until(lambda: _get(base + "/healthz")[0] == 200), "never became live"
        status, body = _get(base + "/readyz")
        assert (status, json.loads(body)["tableHash"]) == (200, box.hash)
        assert f'astra_table_info{{hash="{box.hash}",schema_version="1"}} 1.0' in _get(base + "/metrics")[1]
        assert _healthcheck(port) == 0

        results: list[tuple[int, str]] = []
        in_flight = threading.Thread(target=_ask, args=(base, "slow", results))
        in_flight.start()
        in_flight_gauge = "astra_in_flight_requests 1.0"
        assert wait_until(lambda: in_flight_gauge in _get(base + "/metrics")[1], timeout=5), "never in flight"
        process.send_signal(signal.SIGTERM)
        assert wait_until(lambda: _get(base + "/readyz")[0] == 503, timeout=5), "/readyz never turned 503"
        in_flight.join(timeout=10)
        assert results == [(200, "finished")], "the request in flight must finish during the drain"
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    logs = process.stderr.read().decode() if process.stderr else ""
    assert "Permission denied" not in logs and "Read-only" not in logs, logs
    assert _files_under(box.etc, box.home) == before, "the sidecar wrote outside TMPDIR"


def test_the_healthcheck_fails_when_nothing_listens() -> None:
    assert _healthcheck(free_port()) != 0


def test_the_box_is_read_only_for_the_sidecar_process(box: Box) -> None:
    """The control for the test above: what the sidecar runs as cannot write where it must not."""
    probe = "import sys; open(sys.argv[1], 'w')"
    for target in (box.home / "x", box.etc / "x"):
        done = subprocess.run(
            [sys.executable, "-c", probe, str(target)],
            capture_output=True,
            text=True,
            preexec_fn=_without_root_file_powers if os.geteuid() == 0 else None,
            timeout=30,
        )
        assert done.returncode == 1 and "PermissionError" in done.stderr, done.stderr
    done = subprocess.run(
        [sys.executable, "-c", probe, str(box.tmp / "x")],
        timeout=30,
        preexec_fn=_without_root_file_powers if os.geteuid() == 0 else None,
    )
    assert done.returncode == 0
