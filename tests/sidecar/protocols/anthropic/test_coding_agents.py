"""What coding agents (Claude Code) send on the Anthropic route, through the official `anthropic`
SDK: mid-conversation system messages under their beta (native and translated), the beta
`output_format`, `output_config.effort`, `context_management`, the `HEAD` probe, count_tokens
(native on claude, the documented estimate elsewhere), and any `model` name."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import pytest
from aiohttp.test_utils import TestServer
from anthropic import AsyncAnthropic

from tests.fakes.anthropic_coding import MID_CONVERSATION, CodingAnthropic, counted_tokens
from tests.fakes.anthropic_upstream import Reply, text_message
from tests.fakes.openai_upstream import FakeOpenAI, Step, completion
from tests.sidecar.harness import Sidecar, compile_yaml, running_sidecar
from tests.sidecar.protocols.anthropic.helpers import ENV, WEATHER, astra_yml

CONVERSATION: Any = [
    {"role": "user", "content": "Fix the bug."},
    {"role": "assistant", "content": "Looking."},
    {"role": "system", "content": "The user switched to plan mode."},
    {"role": "user", "content": "Go on."},
]


@dataclass
class Coding:
    anthropic: CodingAnthropic
    openai: FakeOpenAI
    sidecar: Sidecar
    clients: list[AsyncAnthropic]

    def client(self, agent: str) -> AsyncAnthropic:
        client = AsyncAnthropic(
            base_url=f"{self.sidecar.url}/v1/anthropic/{agent}",
            api_key="sk-caller",
            max_retries=0,
            timeout=20,
        )
        self.clients.append(client)
        return client


@pytest.fixture
async def coding(tmp_path: Path) -> AsyncIterator[Coding]:
    fake = CodingAnthropic()
    server = TestServer(fake.app())
    await server.start_server()
    openai_fake = await FakeOpenAI().start()
    table = compile_yaml(tmp_path, astra_yml(str(server.make_url("")).rstrip("/"), openai_fake.url))
    try:
        async with running_sidecar(table, env=ENV) as sidecar:
            world = Coding(fake, openai_fake, sidecar, [])
            yield world
            for client in world.clients:
                await client.close()
    finally:
        await openai_fake.close()
        await server.close()


async def test_mid_conversation_system_message_passes_natively_with_its_beta(coding: Coding) -> None:
    coding.anthropic.push(Reply(text_message("Planned.")))
    answer = await coding.client("claude-native").beta.messages.create(
        model="claude-opus-4-7", max_tokens=100, messages=CONVERSATION, betas=[MID_CONVERSATION]
    )
    assert answer.content[0].type == "text" and answer.content[0].text == "Planned."
    [sent] = coding.anthropic.requests
    assert sent.body["model"] == "claude-test"  # the path's agent, whatever the body named
    assert [m["role"] for m in sent.body["messages"]] == ["user", "assistant", "system", "user"]
    assert MID_CONVERSATION in sent.headers["anthropic-beta"].split(",")


async def test_mid_conversation_system_message_is_a_system_message_when_translated(coding: Coding) -> None:
    coding.openai.script = [Step(body=completion("Planned."))]
    answer = await coding.client("gpt-agent").beta.messages.create(
        model="claude-sonnet-4-5", max_tokens=100, messages=CONVERSATION, betas=[MID_CONVERSATION]
    )
    assert answer.content[0].type == "text" and answer.content[0].text == "Planned."
    sent = coding.openai.received[0].body["messages"]
    assert sent[1:] == [
        {"role": "user", "content": "Fix the bug."},
        {"role": "assistant", "content": "Looking."},
        {"role": "system", "content": "The user switched to plan mode."},
        {"role": "user", "content": "Go on."},
    ]


async def test_system_message_without_a_beta_is_judged_by_anthropic_natively(coding: Coding) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await coding.client("claude-native").messages.create(model="x", max_tokens=10, messages=CONVERSATION)
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "messages.1.role: Input should be 'user' or 'assistant'",
        },
    }
    assert len(coding.anthropic.requests) == 1  # the provider's 400, relayed (not retried)


async def test_a_message_of_another_role_is_refused_before_any_attempt(coding: Coding) -> None:
    odd: Any = [{"role": "tool", "content": "x"}]
    with pytest.raises(anthropic.BadRequestError) as caught:
        await coding.client("claude-native").messages.create(model="x", max_tokens=10, messages=odd)
    assert caught.value.body["error"]["message"] == "messages.0.role: must be 'user' or 'assistant'"  # type: ignore[index]
    assert coding.anthropic.requests == []


async def test_beta_output_format_and_effort_are_translated(coding: Coding) -> None:
    coding.openai.script = [Step(body=completion('{"ok": true}'))]
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    await coding.client("gpt-agent").messages.create(
        model="any", max_tokens=100, messages=CONVERSATION[:1],
        extra_body={"output_format": {"type": "json_schema", "schema": schema}, "output_config": {"effort": "high"}},
    )  # fmt: skip
    sent = coding.openai.received[0].body
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }
    assert sent["reasoning_effort"] == "high"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}}, "context_management.edits.0"),
        ({"output_config": {"effort": "max"}}, "output_config.effort"),
    ],
)
async def test_what_a_translated_agent_cannot_do_is_a_400(
    coding: Coding, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await coding.client("gpt-agent").messages.create(
            model="any", max_tokens=10, messages=CONVERSATION[:1], extra_body=extra
        )
    assert caught.value.body["error"]["message"].startswith(f"{param}: ")  # type: ignore[index]
    assert coding.openai.received == []


async def test_context_management_passes_natively(coding: Coding) -> None:
    coding.anthropic.push(Reply(text_message("ok")))
    edits = {"edits": [{"type": "clear_tool_uses_20250919"}]}
    await coding.client("claude-native").messages.create(
        model="any", max_tokens=10, messages=CONVERSATION[:1], extra_body={"context_management": edits}
    )
    assert coding.anthropic.requests[0].body["context_management"] == edits


async def test_head_probe_of_the_base_url(coding: Coding) -> None:
    async with aiohttp.ClientSession() as session:
        for path, status in (("/v1/anthropic/claude-native", 200), ("/v1/anthropic/claude-native/v1", 200),
                             ("/v1/anthropic/nobody", 404)):  # fmt: skip
            async with session.head(coding.sidecar.url + path) as response:
                assert (path, response.status) == (path, status)


async def test_count_tokens_is_native_on_a_claude_agent(coding: Coding) -> None:
    counted = await coding.client("claude-native").messages.count_tokens(
        model="claude-whatever", messages=CONVERSATION[:1], tools=[WEATHER], system="Be careful."
    )
    [sent] = coding.anthropic.counts
    assert sent.path == "/v1/messages/count_tokens"
    assert counted.input_tokens == counted_tokens(sent.body)
    assert sent.body["model"] == "claude-test"
    assert sent.body["system"][0]["text"] == "You are terse."  # the agent's prompt is counted too
    assert sent.headers["x-api-key"] == "sk-ant-env"
    assert coding.anthropic.requests == []


async def test_count_tokens_is_the_documented_estimate_elsewhere(coding: Coding) -> None:
    counted = await coding.client("gpt-agent").messages.count_tokens(
        model="x", messages=[{"role": "user", "content": "a" * 40}], system="b" * 8
    )
    # every string counts: ceil((len("user") + 40 + 8 + len("You are brief.")) / 4) + 4 per
    # message (sidecar/policy/context.py)
    assert counted.input_tokens == math.ceil((4 + 40 + 8 + 14) / 4) + 4
    assert coding.openai.received == []


async def test_count_tokens_refuses_a_bad_body_in_anthropic_shape(coding: Coding) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await coding.client("claude-native").messages.count_tokens(model="x", messages=[])
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "messages: must be a non-empty array"},
    }
    assert coding.anthropic.counts == []


async def test_unrouted_requests_are_404_naming_the_route_with_one_access_line(
    coding: Coding, caplog: pytest.LogCaptureFixture
) -> None:
    import json

    caplog.set_level("INFO", logger="astra.access")
    async with aiohttp.ClientSession() as session:
        async with session.post(coding.sidecar.url + "/v1/files?key=secret-k", json={}) as response:
            assert response.status == 404
            body = await response.json()
        async with session.get(coding.sidecar.url + "/v1/anthropic/claude-native/v1/files") as response:
            assert response.status == 404
            anthropic_body = await response.json()
    assert body["error"]["type"] == "not_found_error"
    assert anthropic_body["error"] == {
        "type": "not_found_error",
        "message": "no such route: GET /v1/anthropic/claude-native/v1/files",
    }
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "astra.access"]
    assert [(line["method"], line["path"], line["status"], line["error_code"]) for line in lines] == [
        ("POST", "/v1/files", 404, "route_not_found"),
        ("GET", "/v1/anthropic/claude-native/v1/files", 404, "route_not_found"),
    ]
    assert "secret-k" not in caplog.text
