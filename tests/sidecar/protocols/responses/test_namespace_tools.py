"""`namespace` tools (a named group of function tools, as Codex sends them) on a translated
agent: flattened to `{namespace}__{name}` function tools upstream, and the model's calls of them
answered as `function_call` items with the member's own `name` and its `namespace`, whole and
streamed; a namespaced `function_call` sent back goes upstream under the joined name again."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Step, completion
from tests.sidecar.harness import Sidecar, compile_yaml, running_sidecar

AGENTS_NS: Any = {
    "type": "namespace",
    "name": "multi_agent_v1",
    "description": "Sub-agents",
    "tools": [
        {
            "type": "function",
            "name": "spawn_agent",
            "parameters": {"type": "object", "properties": {"task": {"type": "string"}}},
        },
        {"type": "function", "name": "close_agent", "parameters": {"type": "object", "properties": {}}},
    ],
}
SHELL: Any = {
    "type": "function",
    "name": "exec_command",
    "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}},
}


def _tool_call(name: str, arguments: str) -> dict[str, Any]:
    body = completion("", "gpt-up")
    call = {"id": "call_9", "type": "function", "function": {"name": name, "arguments": arguments}}
    body["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [call]}
    body["choices"][0]["finish_reason"] = "tool_calls"
    return body


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[FakeOpenAI, Sidecar]]:
    upstream = await FakeOpenAI().start()
    upstream.script = []
    yaml = f"""
        version: 1
        agents:
          - id: coder
            model: {{provider: vllm, modelId: gpt-up, endpoint: {upstream.url}/v1}}
          - id: no-spawning
            tools: {{deny: [multi_agent_v1__spawn_agent]}}
            model: {{provider: vllm, modelId: gpt-up, endpoint: {upstream.url}/v1}}
        """
    try:
        async with running_sidecar(compile_yaml(tmp_path, yaml)) as sidecar:
            yield upstream, sidecar
    finally:
        await upstream.close()


@dataclass(frozen=True)
class _Answer:
    status_code: int
    text: str
    headers: Mapping[str, str]

    def json(self) -> Any:
        return json.loads(self.text)


async def _post(sidecar: Sidecar, body: dict[str, Any]) -> _Answer:
    timeout = aiohttp.ClientTimeout(total=10)
    url = f"{sidecar.url}/v1/responses"
    async with aiohttp.ClientSession(timeout=timeout) as session, session.post(url, json=body) as response:
        return _Answer(response.status, await response.text(), dict(response.headers))


async def test_a_namespaced_call_comes_back_with_its_namespace(world: tuple[FakeOpenAI, Sidecar]) -> None:
    upstream, sidecar = world
    upstream.script = [Step(body=_tool_call("multi_agent_v1__spawn_agent", '{"task": "lint"}'))]
    response = await _post(sidecar, {"model": "coder", "input": "Lint it.", "tools": [SHELL, AGENTS_NS]})
    assert response.status_code == 200, response.text
    sent = upstream.received[0].body
    assert [t["function"]["name"] for t in sent["tools"]] == [
        "exec_command", "multi_agent_v1__spawn_agent", "multi_agent_v1__close_agent",
    ]  # fmt: skip
    (item,) = response.json()["output"]
    assert {k: item[k] for k in ("type", "call_id", "namespace", "name", "arguments")} == {
        "type": "function_call", "call_id": "call_9", "namespace": "multi_agent_v1", "name": "spawn_agent",
        "arguments": '{"task": "lint"}',
    }  # fmt: skip


async def test_a_streamed_namespaced_call_carries_its_namespace(world: tuple[FakeOpenAI, Sidecar]) -> None:
    upstream, sidecar = world
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-up"}
    call = {
        "index": 0,
        "id": "call_9",
        "type": "function",
        "function": {"name": "multi_agent_v1__close_agent", "arguments": "{}"},
    }
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [call]}, "finish_reason": None}]},
              {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}]  # fmt: skip
    upstream.script = [Step("sse", chunks=chunks)]
    response = await _post(
        sidecar, {"model": "coder", "input": "Done?", "tools": [AGENTS_NS], "stream": True}
    )
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
    added = next(e for e in events if e["type"] == "response.output_item.added")
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    final = events[-1]["response"]["output"][0]
    assert (added["item"]["namespace"], added["item"]["name"]) == ("multi_agent_v1", "close_agent")
    assert done["name"] == "close_agent"
    assert (final["namespace"], final["name"], final["arguments"]) == ("multi_agent_v1", "close_agent", "{}")


async def test_a_namespaced_call_sent_back_goes_upstream_joined(world: tuple[FakeOpenAI, Sidecar]) -> None:
    upstream, sidecar = world
    upstream.script = [Step(body=completion("Closed.", "gpt-up"))]
    items = [
        {"role": "user", "content": "Close it."},
        {
            "type": "function_call",
            "call_id": "call_9",
            "namespace": "multi_agent_v1",
            "name": "close_agent",
            "arguments": "{}",
        },
        {"type": "function_call_output", "call_id": "call_9", "output": "closed"},
    ]
    response = await _post(sidecar, {"model": "coder", "input": items, "tools": [AGENTS_NS]})
    assert response.status_code == 200, response.text
    messages = upstream.received[0].body["messages"]
    assert messages[1]["tool_calls"][0]["function"] == {
        "name": "multi_agent_v1__close_agent",
        "arguments": "{}",
    }
    assert messages[2] == {"role": "tool", "tool_call_id": "call_9", "content": "closed"}


async def test_the_tool_policy_names_namespaced_functions_joined(world: tuple[FakeOpenAI, Sidecar]) -> None:
    upstream, sidecar = world
    upstream.script = [Step(body=completion("Ok.", "gpt-up"))]
    response = await _post(sidecar, {"model": "no-spawning", "input": "Hi", "tools": [AGENTS_NS]})
    assert response.status_code == 200, response.text
    assert response.headers["x-astra-tools-removed"] == "multi_agent_v1__spawn_agent"
    assert [t["function"]["name"] for t in upstream.received[0].body["tools"]] == [
        "multi_agent_v1__close_agent"
    ]


@pytest.mark.parametrize(
    ("tools", "param", "says"),
    [
        ([{"type": "web_search"}], "tools[0].type", 'web_search = "disabled"'),
        (
            [{**AGENTS_NS, "tools": [{"type": "custom", "name": "patch"}]}],
            "tools[0].tools[0].type",
            "'custom'",
        ),
        ([SHELL, {**SHELL}], "tools", "'exec_command' is given twice"),
        (
            [{"type": "namespace", "name": "empty", "description": "", "tools": []}],
            "tools[0].tools",
            "non-empty",
        ),
    ],
)
async def test_tools_a_translated_agent_cannot_serve_are_400s(
    world: tuple[FakeOpenAI, Sidecar], tools: list[Any], param: str, says: str
) -> None:
    upstream, sidecar = world
    response = await _post(sidecar, {"model": "coder", "input": "Hi", "tools": tools})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert says in error["message"]
    assert upstream.received == []
