"""Several `astra serve` processes sharing one Redis, and an async client that keeps every answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.processes import free_port, wait_until


def _ready(base: str) -> bool:
    with urllib.request.urlopen(base + "/readyz", timeout=2) as response:
        return response.status == 200


@dataclass
class SidecarProcess:
    config: Path
    redis_url: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "astra_sidecar", "serve", str(self.config), "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "ASTRA_REDIS_URL": self.redis_url},
        )
        assert wait_until(lambda: _ready(self.base), timeout=20), "astra serve did not become ready"

    def stop(self) -> str:
        """Stops the process; returns what it logged."""
        assert self.process is not None
        self.process.terminate()
        _, err = self.process.communicate(timeout=20)
        self.process = None
        return err.decode(errors="replace")


def fleet(tmp_path: Path, yaml_text: str, redis_url: str, size: int) -> list[SidecarProcess]:
    config = tmp_path / "astra.yml"
    config.write_text(textwrap.dedent(yaml_text))
    members = [SidecarProcess(config, redis_url) for _ in range(size)]
    for member in members:
        member.start()
    return members


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


async def ask(session: aiohttp.ClientSession, base: str, agent: str, **headers: str) -> Answer:
    """One chat completion; the body must be JSON whatever the status (a malformed one fails here)."""
    body = {"model": agent, "messages": [{"role": "user", "content": "hi"}]}
    async with session.post(base + "/v1/chat/completions", json=body, headers=headers) as response:
        text = await response.text()
        return Answer(response.status, json.loads(text), dict(response.headers))
