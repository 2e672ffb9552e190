"""Fixtures for the compiler tests: run the CLI in-process and write config files."""

from __future__ import annotations

from pathlib import Path

import pytest

from astra_sidecar.cli import main
from tests.compiler.helpers import Cli, CliResult, Write


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run `astra ARGS…` in-process; returns exit code, stdout and stderr."""

    def run(*argv: str) -> CliResult:
        code = main(list(argv))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def write(tmp_path: Path) -> Write:
    """Write text (or bytes) to tmp_path/NAME and return the path."""

    def put(content: str | bytes, name: str = "astra.yml") -> Path:
        path = tmp_path / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    return put
