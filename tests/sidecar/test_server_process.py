"""`astra serve` as a real process: ready fast, reload on SIGHUP and on file change, drain on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.processes import free_port, wait_until

DEMO = """
    version: 1
    settings: {{drainGraceMs: 2000}}
    agents:
      demo: {{model: {{provider: mock, modelId: demo, mock: {{reply: "{reply}"}}}}}}
    """


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _ask(base: str) -> str:
    body = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = urllib.request.Request(
        base + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return str(json.loads(response.read())["choices"][0]["message"]["content"])


@pytest.fixture
def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    config = tmp_path / "astra.yml"
    config.write_text(textwrap.dedent(DEMO.format(reply="one")))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "astra_sidecar", "serve", str(config), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        yield process, base, config
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def test_serve_reloads_and_drains(served) -> None:  # type: ignore[no-untyped-def]
    process, base, config = served
    started = time.monotonic()
    assert wait_until(lambda: _get(base + "/readyz")[0] == 200, timeout=10.0)
    ready_s = time.monotonic() - started
    assert ready_s < 5.0
    assert _ask(base) == "one"

    config.write_text(textwrap.dedent(DEMO.format(reply="two")))
    assert wait_until(lambda: _ask(base) == "two", timeout=10.0), "file change did not reload"

    config.write_text(textwrap.dedent(DEMO.format(reply="three")))
    process.send_signal(signal.SIGHUP)
    assert wait_until(lambda: _ask(base) == "three", timeout=10.0), "SIGHUP did not reload"

    config.write_text("version: 1\nagents: [oops\n")
    process.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert _ask(base) == "three", "an invalid file must keep the old table"

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    logs = process.stderr.read().decode() if process.stderr else ""
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert any("reload (SIGHUP) refused" in str(line.get("msg")) for line in lines)
    assert any(str(line.get("msg", "")).startswith("draining") for line in lines)
    assert sum(1 for line in lines if line.get("route") == "openai") >= 4


def test_serve_refuses_a_broken_config_with_diagnostics(tmp_path: Path) -> None:
    config = tmp_path / "astra.yml"
    config.write_text("version: 1\nagents:\n  demo: {model: {provider: nope, modelId: x}}\n")
    done = subprocess.run(
        [sys.executable, "-m", "astra_sidecar", "serve", str(config)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert f"{config}:3:" in done.stderr


def test_workers_share_one_port_and_stop_together(tmp_path: Path) -> None:
    config = tmp_path / "astra.yml"
    config.write_text(textwrap.dedent(DEMO.format(reply="many")))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "astra_sidecar", "serve", str(config), "--port", str(port), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _get(base + "/readyz")[0] == 200, timeout=10.0)
        assert all(_ask(base) == "many" for _ in range(20))
        children = subprocess.run(
            ["pgrep", "-P", str(process.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(children) == 2
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert all(not Path(f"/proc/{pid}").exists() for pid in children)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
