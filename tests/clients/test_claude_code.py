"""Claude Code itself (`@anthropic-ai/claude-code`, pinned in claude-code/package.json, installed by
scripts/install-node) through the sidecar's Anthropic route, as a user points it at an agent:
`ANTHROPIC_BASE_URL=http://sidecar/v1/anthropic/AGENT`, any API key, non-essential traffic off.

The sidecar is a real `astra serve` process; the agents are served by a claude agent (native, the
fake Anthropic API) and an openai agent (translated, the fake OpenAI API). The fakes answer from
the request: while the conversation has no tool result, they ask for Claude Code's `Read` tool on a
file in the run's working directory; once Claude Code sends the file's content back as a tool
result, they answer the final text, which Claude Code prints. Claude Code streams every call, so
both fakes stream; `--output-format json` is the plain run and `stream-json` the streamed one.

What Claude Code 2.1.332 sends, and the sidecar must take on both paths: `POST
/v1/anthropic/AGENT/v1/messages?beta=true` with system turns inside `messages` (under its
`per-turn-control-…` beta), `thinking: {type: adaptive}`, `context_management` clearing thinking,
`output_config.effort`, `metadata.user_id`, `cache_control` marks, a `defer_loading` tool and
(with CLAUDE_CODE_ENABLE_FINE_GRAINED_TOOL_STREAMING) `eager_input_streaming` on every tool.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.fakes.anthropic_coding import CodingAnthropic
from tests.fakes.anthropic_upstream import Reply, Script, ToolUse, text_message, tool_message
from tests.fakes.openai_upstream import FakeOpenAI, Step, completion, text_chunks
from tests.processes import free_port

FOLDER = Path(__file__).parent / "claude-code"
ENV = {"ANTHROPIC_API_KEY": "sk-ant-env", "OPENAI_API_KEY": "sk-openai-env"}
CODE_WORD = "PLUM-42"
FINAL = f"The code word is {CODE_WORD}."
PROMPT = "Read notes.txt in the current directory and tell me the code word."
#: A real binary, not npm's placeholder for it (`bin/claude.exe` before the postinstall copies it).
_MIN_BINARY_BYTES = 1_000_000


def claude_binary() -> Path | None:
    """Claude Code's native binary: the wrapper's bin once its postinstall ran, else the platform
    package's own copy (npm skips install scripts it has not been told to allow)."""
    wrapper = FOLDER / "node_modules" / ".bin" / "claude"
    if wrapper.exists() and wrapper.resolve().stat().st_size > _MIN_BINARY_BYTES:
        return wrapper
    for candidate in sorted((FOLDER / "node_modules" / "@anthropic-ai").glob("claude-code-*/claude")):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


CLAUDE = claude_binary()
pytestmark = pytest.mark.skipif(
    CLAUDE is None,
    reason="Claude Code is not installed: scripts/install-node (or npm ci in tests/clients/claude-code)",
)


# --- the fakes' answers -----------------------------------------------------------------------------


def _anthropic_has_tool_result(body: dict[str, Any]) -> bool:
    return any(
        isinstance(block, dict) and block.get("type") == "tool_result"
        for message in body.get("messages", ())
        if isinstance(message.get("content"), list)
        for block in message["content"]
    )


def anthropic_answer(notes: Path) -> Any:
    def answer(body: dict[str, Any]) -> Script:
        if not body.get("tools") or _anthropic_has_tool_result(body):
            return Reply(text_message(FINAL if body.get("tools") else "ok"))
        return Reply(
            tool_message(ToolUse("toolu_read_1", "Read", {"file_path": str(notes)}), text="Reading it.")
        )

    return answer


def _tool_call_chunks(notes: Path) -> list[dict[str, Any]]:
    base = {"id": "chatcmpl-cc", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test"}
    arguments = json.dumps({"file_path": str(notes)})
    call = {
        "index": 0,
        "id": "call_read_1",
        "type": "function",
        "function": {"name": "Read", "arguments": ""},
    }
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [call]}}]}]
    for start in range(0, len(arguments), 7):
        piece = {"index": 0, "function": {"arguments": arguments[start : start + 7]}}
        chunks.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": [piece]}}]})
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    usage = {"prompt_tokens": 900, "completion_tokens": 20, "total_tokens": 920}
    chunks.append({**base, "choices": [], "usage": usage})
    return chunks


def _tool_call_completion(notes: Path) -> dict[str, Any]:
    body = completion("")
    call = {"id": "call_read_1", "type": "function",
            "function": {"name": "Read", "arguments": json.dumps({"file_path": str(notes)})}}  # fmt: skip
    body["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [call]}
    body["choices"][0]["finish_reason"] = "tool_calls"
    return body


def openai_answer(notes: Path) -> Any:
    def answer(body: dict[str, Any]) -> Step:
        done = any(m.get("role") == "tool" for m in body.get("messages", ()))
        text = FINAL if body.get("tools") else "ok"
        if body.get("tools") and not done:
            if body.get("stream"):
                return Step(kind="sse", chunks=_tool_call_chunks(notes))
            return Step(body=_tool_call_completion(notes))
        if body.get("stream"):
            return Step(kind="sse", chunks=[*text_chunks([text[:9], text[9:]]), _usage_chunk()])
        return Step(body=completion(text))

    return answer


def _usage_chunk() -> dict[str, Any]:
    usage = {"prompt_tokens": 950, "completion_tokens": 8, "total_tokens": 958}
    return {"id": "chatcmpl-cc", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test",
            "choices": [], "usage": usage}  # fmt: skip


# --- the world: fakes, `astra serve`, a working directory -------------------------------------------


@dataclass
class World:
    anthropic: CodingAnthropic
    openai: FakeOpenAI
    base: str
    workdir: Path
    home: Path
    process: asyncio.subprocess.Process
    access: list[dict[str, Any]] = field(default_factory=list)

    async def stop(self) -> list[dict[str, Any]]:
        """Stops the sidecar (it flushes its access lines at shutdown); those lines."""
        if self.process.returncode is None:
            self.process.terminate()
        _, err = await asyncio.wait_for(self.process.communicate(), timeout=30)
        for line in err.decode().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "route" in record and "status" in record:
                self.access.append(record)
        return self.access


def _yaml(anthropic: str, openai: str) -> str:
    return f"""
version: 1
agents:
  - id: claude-coder
    model: {{provider: claude, modelId: claude-test, endpoint: "{anthropic}", maxOutputTokens: 4096}}
  - id: gpt-coder
    model: {{provider: openai, modelId: gpt-test, endpoint: "{openai}", maxOutputTokens: 4096}}
"""


async def _ready(base: str, process: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            if process.returncode is not None:
                pytest.fail(f"astra serve exited with {process.returncode}")
            try:
                async with session.get(base + "/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    pytest.fail("astra serve did not get ready within 30 s")


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    workdir, home = tmp_path / "work", tmp_path / "home"
    workdir.mkdir()
    home.mkdir()
    notes = workdir / "notes.txt"
    notes.write_text(f"Meeting notes.\nThe code word is {CODE_WORD}.\n")
    async with AsyncExitStack() as stack:
        anthropic = CodingAnthropic()
        anthropic.responder = anthropic_answer(notes)
        server = TestServer(anthropic.app())
        await server.start_server()
        stack.push_async_callback(server.close)
        openai = await FakeOpenAI().start()
        openai.responder = openai_answer(notes)
        stack.push_async_callback(openai.close)
        config = tmp_path / "astra.yml"
        config.write_text(_yaml(str(server.make_url("")).rstrip("/"), openai.url))
        port = free_port()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "astra_sidecar", "serve", str(config), "--port", str(port),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **ENV, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        world = World(anthropic, openai, f"http://127.0.0.1:{port}", workdir, home, process)
        try:
            await _ready(world.base, process)
            yield world
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def run_claude(world: World, agent: str, output_format: str, **extra_env: str) -> tuple[int, str, str]:
    assert CLAUDE is not None
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(world.home),
        "ANTHROPIC_BASE_URL": f"{world.base}/v1/anthropic/{agent}",
        "ANTHROPIC_API_KEY": "dummy",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        **extra_env,
    }
    args = ["-p", PROMPT, "--output-format", output_format, "--allowedTools", "Read"]
    if output_format == "stream-json":
        args.append("--verbose")
    process = await asyncio.create_subprocess_exec(
        str(CLAUDE), *args, cwd=world.workdir, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=180)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail("claude -p did not finish within 180 s")
    return process.returncode or 0, out.decode(), err.decode()


def final_result(output_format: str, out: str) -> dict[str, Any]:
    if output_format == "json":
        result: dict[str, Any] = json.loads(out)
        return result
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    [result] = [event for event in events if event.get("type") == "result"]
    tools = [block for event in events if event.get("type") == "assistant"
             for block in event["message"]["content"] if block.get("type") == "tool_use"]  # fmt: skip
    assert [tool["name"] for tool in tools] == ["Read"]
    return dict(result)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(str(part.get("text", "")) for part in content or () if isinstance(part, dict))


# --- the runs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("output_format", ["json", "stream-json"])
async def test_claude_code_reads_a_file_through_a_native_claude_agent(
    world: World, output_format: str
) -> None:
    code, out, err = await run_claude(world, "claude-coder", output_format)
    assert code == 0, err[-2000:]
    result = final_result(output_format, out)
    assert (result["is_error"], result["result"]) == (False, FINAL)
    main = [r for r in world.anthropic.requests if r.body.get("tools")]
    assert len(main) == 2  # the tool call, then the answer after the tool result
    assert all(r.path == "/v1/messages" and r.headers["x-api-key"] == "sk-ant-env" for r in main)
    assert all(r.body["model"] == "claude-test" and r.body["stream"] is True for r in main)
    results = [b for m in main[1].body["messages"] if isinstance(m["content"], list)
               for b in m["content"] if b.get("type") == "tool_result"]  # fmt: skip
    assert [r["tool_use_id"] for r in results] == ["toolu_read_1"]
    assert CODE_WORD in _text_of(results[0]["content"])
    assert "system" in [m["role"] for m in main[0].body["messages"]]  # passed through natively
    access = await world.stop()
    served = [a for a in access if a["route"] == "anthropic" and a["path"].endswith("/v1/messages")]
    assert [(a["method"], a["agent"], a["status"], a["provider"]) for a in served] == [
        ("POST", "claude-coder", 200, "claude")
    ] * len(world.anthropic.requests)


@pytest.mark.parametrize("output_format", ["json", "stream-json"])
async def test_claude_code_reads_a_file_through_a_translated_openai_agent(
    world: World, output_format: str
) -> None:
    code, out, err = await run_claude(
        world, "gpt-coder", output_format, CLAUDE_CODE_ENABLE_FINE_GRAINED_TOOL_STREAMING="1"
    )
    assert code == 0, err[-2000:]
    result = final_result(output_format, out)
    assert (result["is_error"], result["result"]) == (False, FINAL)
    main = [r for r in world.openai.received if r.body.get("tools")]
    assert len(main) == 2
    assert all(
        r.headers["Authorization"] == "Bearer sk-openai-env" and r.body["model"] == "gpt-test" for r in main
    )
    names = [tool["function"]["name"] for tool in main[0].body["tools"]]
    assert "Read" in names and "Bash" in names
    tool_messages = [m for m in main[1].body["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["call_read_1"]
    assert CODE_WORD in _text_of(tool_messages[0]["content"])
    roles = [m["role"] for m in main[0].body["messages"]]
    assert roles[0] == "system" and "system" in roles[1:]  # Claude Code's system turns, in place
    assert world.anthropic.requests == []
    access = await world.stop()
    served = [a for a in access if a["route"] == "anthropic" and a["path"].endswith("/v1/messages")]
    assert [(a["method"], a["agent"], a["status"], a["provider"]) for a in served] == [
        ("POST", "gpt-coder", 200, "openai")
    ] * len(world.openai.received)
