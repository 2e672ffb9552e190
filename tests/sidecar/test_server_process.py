"""`astra serve` as a real process: ready fast, reload on SIGHUP and on file change, drain on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
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


def _metrics(base: str) -> str:
    with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
        return str(response.read().decode())


def _metric(base: str, series: str) -> float:
    """The value of one exposition line (`name{labels}` exactly as rendered), 0 when absent."""
    for line in _metrics(base).splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


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

    process.send_signal(signal.SIGHUP)  # the same file again: said so, nothing swapped
    assert wait_until(lambda: _metric(base, 'astra_reloads_total{result="unchanged"}') == 1.0, timeout=10.0)
    config.write_text("version: 1\nagents: [oops\n")
    process.send_signal(signal.SIGHUP)
    assert wait_until(lambda: _metric(base, 'astra_reloads_total{result="failed"}') >= 1.0, timeout=10.0)
    assert _ask(base) == "three", "an invalid file must keep the old table"
    config.write_text(textwrap.dedent(DEMO.format(reply="four")))
    assert wait_until(lambda: _ask(base) == "four", timeout=10.0), "the watcher stopped after a failure"

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    logs = process.stderr.read().decode() if process.stderr else ""
    lines = [json.loads(line) for line in logs.splitlines()]  # every line is JSON
    messages = [str(line.get("msg")) for line in lines]
    assert any(m.startswith("reload (SIGHUP): the table is unchanged") for m in messages)
    assert any(m.startswith("reload (SIGHUP) failed in the load step") for m in messages)
    assert "never retrieved" not in logs
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


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "astra_sidecar", "serve", *args], capture_output=True, text=True, timeout=30
    )


def test_a_port_out_of_range_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "astra.yml"
    config.write_text(textwrap.dedent(DEMO.format(reply="x")))
    done = _serve(str(config), "--port", "99999")
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "astra serve: error: argument --port: 99999 is out of range: a port is 0-65535 (0: any free port)"
    )
    assert _serve(str(config), "--workers", "0").returncode == 2


@pytest.mark.parametrize(
    ("host", "reason"),
    [("127.0.0.1", "address already in use"), ("no-such-host.invalid", "")],
)
def test_a_bind_failure_is_one_json_line_and_exit_2(tmp_path: Path, host: str, reason: str) -> None:
    config = tmp_path / "astra.yml"
    config.write_text(textwrap.dedent(DEMO.format(reply="x")))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve(str(config), "--host", host, "--port", str(port))
    assert done.returncode == 2
    (line,) = [json.loads(text) for text in done.stderr.splitlines()]
    assert line["level"] == "error"
    assert line["msg"].startswith(f"cannot listen on {host}:{port}: ")
    assert reason in line["msg"].lower()
    assert "Traceback" not in done.stderr


def _sample(text: str, series: str) -> float:
    return next((float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(series + " ")), 0.0)


def test_two_workers_scrape_as_one_server(tmp_path: Path) -> None:
    """Every scrape, whichever worker answers, shows the totals of both: a counter never goes
    back, and it reaches exactly the number of requests sent; breakers say which worker."""
    config = tmp_path / "astra.yml"
    config.write_text(textwrap.dedent(DEMO.format(reply="many")))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "astra_sidecar", "serve", str(config), "--port", str(port), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    served = 'astra_requests_total{agent="demo",provider="mock",status="200"}'
    try:
        assert wait_until(lambda: _get(base + "/readyz")[0] == 200, timeout=10.0)
        # Ready means one worker listens; both serve once each has published its table.
        assert wait_until(lambda: _metrics(base).count("\nastra_table_info{") == 2, timeout=20.0)
        seen: list[float] = []
        for _ in range(30):
            assert _ask(base) == "many"
            text = _metrics(base)
            seen.append(_sample(text, served))
        assert seen == sorted(seen), f"a counter went back: {seen}"
        assert wait_until(lambda: _metric(base, served) == 30.0, timeout=10.0)
        text = _metrics(base)
        assert _sample(text, 'astra_request_duration_seconds_count{agent="demo"}') == 30.0
        breakers = sorted(line for line in text.splitlines() if line.startswith("astra_breaker_state{"))
        assert breakers == [
            f'astra_breaker_state{{cluster="{key}",provider="mock",worker="{w}"}} 0.0'
            for key in [breakers[0].split('cluster="')[1].split('"')[0]]
            for w in ("0", "1")
        ]
        assert len([line for line in text.splitlines() if line.startswith("astra_table_info{")]) == 2
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


STOPPED_WHILE_LOADING = """
import os, signal, sys
from astra_sidecar.compiler.loader import load_routing_table
from astra_sidecar.sidecar.server import ServeOptions, serve

PARENT = os.getpid()

def load(path):
    if {in_worker} and os.getpid() == PARENT:
        return load_routing_table(path)
    os.kill(os.getpid(), signal.{name})  # arrives while the table loads: nothing served yet
    raise AssertionError("the signal did not stop the start-up")

sys.exit(serve(ServeOptions(path=sys.argv[1], load=load, host="127.0.0.1", port=0, workers={workers})))
"""


@pytest.mark.parametrize(
    ("name", "workers"), [("SIGTERM", 1), ("SIGINT", 1), ("SIGTERM", 2)], ids=["term", "int", "term-in-workers"]
)
def test_a_stop_signal_before_serving_is_a_clean_exit(tmp_path: Path, name: str, workers: int) -> None:
    """Also in each worker `--workers` forks, which loads its own table (the parent's SIGTERM
    reaches workers that may still be starting)."""
    config = tmp_path / "astra.yml"
    config.write_text(textwrap.dedent(DEMO.format(reply="x")))
    script = STOPPED_WHILE_LOADING.format(name=name, workers=workers, in_worker=workers > 1)
    done = subprocess.run([sys.executable, "-c", script, str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(text) for text in done.stderr.splitlines()]
    assert [(line["level"], line["msg"]) for line in lines] == [("info", f"stopped by {name} before serving")] * workers
