"""Runs the Node client scripts of this folder against a sidecar with fake upstreams.

`node_world` starts a fake Anthropic API and a fake OpenAI API (Chat Completions and Responses:
`tests/fakes`), and a sidecar with two agents: `claude-agent` (provider claude) and `gpt-agent`
(provider openai). A Responses or Anthropic caller is native on the agent of its own API and
translated on the other one. `run_node` runs one scenario of a script (`node <script> <name>`)
and returns the JSON object it printed.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from tests.fakes import anthropic_upstream as claude
from tests.fakes.openai_upstream import FakeOpenAI
from tests.sidecar.harness import Sidecar, compile_yaml, running_sidecar

FOLDER = Path(__file__).parent
ENV = {"ANTHROPIC_API_KEY": "sk-ant", "OPENAI_API_KEY": "sk-oa"}


@dataclass
class NodeWorld:
    anthropic: claude.FakeAnthropic
    openai: FakeOpenAI
    sidecar: Sidecar

    def paths(self) -> list[str]:
        """The paths the fake OpenAI API was called on, in order."""
        return [r.path for r in self.openai.received]


@asynccontextmanager
async def node_world(tmp_path: Path) -> AsyncIterator[NodeWorld]:
    async with AsyncExitStack() as stack:
        anthropic = claude.FakeAnthropic()
        server = TestServer(anthropic.app())
        await server.start_server()
        stack.push_async_callback(server.close)
        openai = await FakeOpenAI().start()
        stack.push_async_callback(openai.close)
        openai.script = []
        anthropic_url = str(server.make_url("")).rstrip("/")
        yaml = f"""
            version: 1
            agents:
              - id: claude-agent
                model: {{provider: claude, modelId: claude-test, endpoint: {anthropic_url}, maxOutputTokens: 512}}
              - id: gpt-agent
                model: {{provider: openai, modelId: gpt-up, endpoint: {openai.url}/v1}}
            """
        async with running_sidecar(compile_yaml(tmp_path, yaml), env=ENV) as sidecar:
            yield NodeWorld(anthropic, openai, sidecar)


async def run_node(script: str, scenario: str, env: dict[str, str]) -> dict[str, Any]:
    """Runs `node <script> <scenario>`; the JSON object it printed (`ok` false on a client error)."""
    if not (FOLDER / "node_modules").is_dir():
        pytest.fail("the Node clients are missing: run scripts/install-node (scripts/test does)")
    process = await asyncio.create_subprocess_exec(
        "node", str(FOLDER / script), scenario, cwd=FOLDER, env={**os.environ, **env},
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"node {script} {scenario} did not finish within 60 s")
    lines = out.decode().strip().splitlines()
    if not lines:
        pytest.fail(f"node {script} {scenario} printed nothing; stderr: {err.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result
