"""Codex CLI (`@openai/codex` from npm, installed by scripts/install-node) through `/v1/responses`.

`codex exec` runs with a config.toml in a temporary CODEX_HOME whose model provider is the
sidecar (`wire_api = "responses"`, a dummy key in `env_key`), on an agent served by Claude
(translated) and by OpenAI's Responses API (native). The fake upstream's first answer asks for
Codex's shell tool (`exec_command`); Codex runs the command and sends its output back, which
must reach the upstream; the second answer is the final text Codex prints.

Codex sends a `web_search` tool unless its config turns it off: a translated agent refuses it
(400 naming the Codex setting), so the claude run sets `web_search = "disabled"`; the recorded
request (`codex/recorded-request.json`, captured from Codex 0.171 by pointing it at a capture
server) shows that refusal, and what the translation sends upstream for Codex's tools.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from tests.fakes import anthropic_upstream as claude
from tests.fakes.openai_upstream import FakeOpenAI, Step, response_call, response_events, response_text
from tests.sidecar.harness import Sidecar, compile_yaml, running_sidecar

FOLDER = Path(__file__).parent / "codex"
CODEX = FOLDER / "node_modules" / ".bin" / "codex"
RECORDED = FOLDER / "recorded-request.json"
ENV = {"ANTHROPIC_API_KEY": "sk-ant", "OPENAI_API_KEY": "sk-oa"}
MARK = "astra-codex-tool-ran"


@dataclass
class Upstreams:
    anthropic: claude.FakeAnthropic
    openai: FakeOpenAI
    sidecar: Sidecar


async def _serve(app: web.Application, stack: AsyncExitStack) -> str:
    server = TestServer(app)
    await server.start_server()
    stack.push_async_callback(server.close)
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def upstreams(tmp_path: Path) -> AsyncIterator[Upstreams]:
    async with AsyncExitStack() as stack:
        anthropic = claude.FakeAnthropic()
        anthropic_url = await _serve(anthropic.app(), stack)
        openai = await FakeOpenAI().start()
        stack.push_async_callback(openai.close)
        openai.script = []
        yaml = f"""
            version: 1
            agents:
              - id: claude-coder
                model: {{provider: claude, modelId: claude-test, endpoint: {anthropic_url}, maxOutputTokens: 1024}}
              - id: gpt-coder
                model: {{provider: openai, modelId: gpt-up, endpoint: {openai.url}/v1}}
            """
        async with running_sidecar(compile_yaml(tmp_path, yaml), env=ENV) as sidecar:
            yield Upstreams(anthropic, openai, sidecar)


def _codex_home(tmp_path: Path, sidecar: Sidecar, agent: str, *, web_search: bool) -> Path:
    home = tmp_path / "codex-home"
    home.mkdir()
    lines = [
        f'model = "{agent}"',
        'model_provider = "astra"',
        'approval_policy = "never"',
        "check_for_update_on_startup = false",
        *([] if web_search else ['web_search = "disabled"']),
        "[model_providers.astra]",
        'name = "astra sidecar"',
        f'base_url = "{sidecar.url}/v1"',
        'wire_api = "responses"',
        'env_key = "ASTRA_TEST_KEY"',
        "[analytics]",
        "enabled = false",
    ]
    (home / "config.toml").write_text("\n".join(lines) + "\n")
    return home


async def _codex_exec(home: Path, workdir: Path, prompt: str) -> tuple[int, str, str]:
    if not CODEX.exists():
        pytest.fail("Codex CLI is missing: run scripts/install-node (scripts/test does)")
    workdir.mkdir(exist_ok=True)
    env = {**os.environ, "CODEX_HOME": str(home), "ASTRA_TEST_KEY": "sk-dummy", "NO_COLOR": "1"}
    env.pop("OPENAI_API_KEY", None)
    process = await asyncio.create_subprocess_exec(
        str(CODEX), "exec", "--skip-git-repo-check", "--sandbox", "read-only",
        "-C", str(workdir), prompt,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail("codex exec did not finish within 120 s")
    return process.returncode or 0, out.decode(), err.decode()


def _tool_arguments() -> dict[str, Any]:
    return {"cmd": f"echo {MARK}", "yield_time_ms": 1000}


async def test_codex_exec_runs_a_shell_command_on_a_claude_agent(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    upstreams.anthropic.push(
        claude.Reply(claude.tool_message(claude.ToolUse("toolu_1", "exec_command", _tool_arguments()))),
        claude.Reply(claude.text_message("The command printed the mark.")),
    )
    home = _codex_home(tmp_path, upstreams.sidecar, "claude-coder", web_search=False)
    code, out, err = await _codex_exec(home, tmp_path / "work", "Run the echo command.")
    assert code == 0, err[-3000:]
    assert "The command printed the mark." in out
    first, second = (r.body for r in upstreams.anthropic.requests)
    assert "exec_command" in [tool["name"] for tool in first["tools"]]
    assert "multi_agent_v1__close_agent" in [
        tool["name"] for tool in first["tools"]
    ]  # a namespace, flattened
    results = [block for m in second["messages"] for block in m["content"] if isinstance(m["content"], list)
               and block.get("type") == "tool_result"]  # fmt: skip
    assert [r["tool_use_id"] for r in results] == ["toolu_1"]
    assert MARK in json.dumps(results[0]["content"])  # Codex ran the command; its output went upstream


async def test_codex_exec_runs_a_shell_command_on_an_openai_agent(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    call = response_call("call_1", "exec_command", json.dumps(_tool_arguments()), rid="resp_up1")
    answer = response_text("The command printed the mark.", rid="resp_up2")
    upstreams.openai.script = [
        Step("events", chunks=response_events(call)),
        Step("events", chunks=response_events(answer)),
    ]
    home = _codex_home(tmp_path, upstreams.sidecar, "gpt-coder", web_search=True)
    code, out, err = await _codex_exec(home, tmp_path / "work", "Run the echo command.")
    assert code == 0, err[-3000:]
    assert "The command printed the mark." in out
    first, second = upstreams.openai.received
    assert first.path == second.path == "/v1/responses"
    assert first.body["model"] == "gpt-up"  # the agent's model, not the agent id
    assert "web_search" in [tool["type"] for tool in first.body["tools"]]  # native: built-in tools pass
    assert first.headers["Authorization"] == "Bearer sk-oa"
    outputs = [item for item in second.body["input"] if item.get("type") == "function_call_output"]
    assert [o["call_id"] for o in outputs] == ["call_1"]
    assert MARK in json.dumps(outputs[0]["output"])


def _recorded() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(RECORDED.read_text())
    return body


async def _post(sidecar: Sidecar, body: dict[str, Any]) -> tuple[int, Any]:
    async with (
        ClientSession() as session,
        session.post(
            f"{sidecar.url}/v1/responses", json=body, headers={"Authorization": "Bearer x"}
        ) as response,
    ):
        text = await response.text()
        return response.status, json.loads(text) if response.content_type == "application/json" else text


async def test_codex_s_web_search_tool_on_a_translated_agent_is_refused_naming_the_setting(
    upstreams: Upstreams,
) -> None:
    body = {**_recorded(), "model": "claude-coder", "stream": False}
    status, answer = await _post(upstreams.sidecar, body)
    assert status == 400
    error = answer["error"]
    assert error["param"] == "tools[8].type"
    assert error["code"] == "unsupported_tool"
    assert 'web_search = "disabled"' in error["message"]
    assert upstreams.anthropic.requests == []


async def test_codex_s_recorded_request_is_translated_for_claude(upstreams: Upstreams) -> None:
    recorded = _recorded()
    tools = [tool for tool in recorded["tools"] if tool["type"] != "web_search"]
    upstreams.anthropic.push(claude.Reply(claude.text_message("hi")))
    status, answer = await _post(
        upstreams.sidecar, {**recorded, "tools": tools, "model": "claude-coder", "stream": False}
    )
    assert status == 200, answer
    assert answer["output"][0]["content"][0]["text"] == "hi"
    assert answer["store"] is False
    sent = upstreams.anthropic.requests[0].body
    namespace = next(tool for tool in tools if tool["type"] == "namespace")
    expected = [t["name"] for t in tools if t["type"] == "function"]
    expected[4:4] = [f"{namespace['name']}__{member['name']}" for member in namespace["tools"]]
    assert [tool["name"] for tool in sent["tools"]] == expected
    assert "You are a coding agent running in the Codex CLI" in json.dumps(
        sent["system"]
    )  # developer → system
