"""Every field of an Anthropic Messages request on a translated agent (the docs/config.md table,
`ingress_fields`): honoured or translated fields reach the OpenAI upstream as the table says,
the others are a 400 naming the field before any attempt, and an unknown field is one too. On a
native agent the same body goes to Anthropic as it came (the provider judges). Anthropic betas,
fine-grained tool streaming included, work on both paths."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from tests.fakes.anthropic_upstream import Reply, ToolUse, sse_bytes, text_message, tool_message
from tests.fakes.openai_upstream import Step, completion
from tests.sidecar.protocols.anthropic.helpers import USER, WEATHER, World, sse

FINE_GRAINED = "fine-grained-tool-streaming-2025-05-14"
STREAMED_TOOL = {**WEATHER, "eager_input_streaming": True}

REFUSED: list[tuple[dict[str, Any], str, str]] = [
    ({"top_k": 5}, "top_k", "top_k: not served by this agent's provider (only Anthropic models have it)"),
    ({"container": "container_1"}, "container", "container: not served by this agent's provider (only Anthropic models have it)"),
    ({"inference_geo": "us"}, "inference_geo", "inference_geo: not served by this agent's provider (only Anthropic models have it)"),
    ({"thread": {"type": "create"}}, "thread", "thread: not served by this agent's provider (only Anthropic models have it)"),
    ({"fallbacks": "default"}, "fallbacks", "fallbacks: not served by this agent's provider (only Anthropic models have it)"),
    ({"compaction": {"trigger": 1000}}, "compaction", "compaction: not served by this agent's provider (only Anthropic models have it)"),
    ({"speed": "fast"}, "speed", "speed: 'fast' is not served by this agent's provider (only Anthropic models have it); accepted here: 'standard'"),
    ({"service_tier": "priority"}, "service_tier", "service_tier: 'priority' is not served by this agent's provider (only Anthropic models have it); accepted here: 'auto', 'standard_only'"),
    ({"output_config": {"task_budget": {"type": "tokens", "total": 1000}}}, "output_config.task_budget", "output_config.task_budget: not served by this agent's provider (only Anthropic models have it)"),
    ({"context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}}, "context_management.edits.0", "context_management.edits.0: the edit 'clear_tool_uses_20250919' is not served by this agent's provider (only Anthropic models have it)"),
    ({"metadata": {"user_id": "u", "tenant": "t"}}, "metadata.tenant", "metadata.tenant: unknown metadata field (Anthropic takes only user_id)"),
    ({"billing_policy": {"type": "billing_policy", "bill_to": "user_profile"}}, "billing_policy", "billing_policy: billing another organization is not served by this agent's provider (only Anthropic models have it)"),
    ({"tools": [{**WEATHER, "input_examples": [{"city": "Paris"}]}]}, "tools.0.input_examples", "tools.0.input_examples: this tool field is not served by this agent's provider (only Anthropic models have it)"),
    ({"brand_new_knob": 1}, "brand_new_knob", "brand_new_knob: unknown field (not a Messages API field this sidecar can translate)"),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "param", "message"), REFUSED, ids=[param for _, param, _ in REFUSED])
async def test_what_a_translated_agent_cannot_serve_is_a_400_naming_the_field(
    world: World, extra: dict[str, Any], param: str, message: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await world.client("gpt-agent").messages.create(
            model="m", max_tokens=10, messages=USER, extra_body=extra
        )
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": message},
    }
    assert world.openai.received == []


async def test_honoured_fields_reach_the_translated_upstream(world: World) -> None:
    world.openai.script = [Step(body=completion("ok"))]
    deferred = {"name": "rare_tool", "input_schema": {"type": "object"}, "defer_loading": True}
    extra = {
        "service_tier": "standard_only",
        "speed": "standard",
        "cache_control": {"type": "ephemeral"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "billing_policy": {"type": "billing_policy", "bill_to": "self"},
        "inference_geo": None,
        "tools": [{**STREAMED_TOOL, "cache_control": {"type": "ephemeral"}}, deferred],
    }
    answer = await world.client("gpt-agent").messages.create(
        model="m", max_tokens=10, messages=USER, metadata={"user_id": "u-7"}, extra_body=extra
    )
    assert answer.content[0].type == "text" and answer.content[0].text == "ok"
    [sent] = world.openai.received
    assert [tool["function"]["name"] for tool in sent.body["tools"]] == ["get_weather", "rare_tool"]
    assert sent.body["user"] == "u-7"
    for field in ("service_tier", "speed", "cache_control", "context_management", "billing_policy"):
        assert field not in sent.body


async def test_a_native_agent_passes_every_field_to_anthropic(world: World) -> None:
    world.anthropic.push(Reply(text_message("ok")))
    extra = {"top_k": 5, "speed": "fast", "inference_geo": "us", "brand_new_knob": 1}
    await world.client("claude-native").messages.create(
        model="m", max_tokens=10, messages=USER, extra_body=extra
    )
    [sent] = world.anthropic.requests
    assert {key: sent.body[key] for key in extra} == extra


def _tool_chunks() -> list[dict[str, Any]]:
    base = {"id": "chatcmpl-t", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test"}
    fragments = ['{"ci', 'ty": "Pa', 'ris"}']
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]},
        "finish_reason": None}]}]  # fmt: skip
    for fragment in fragments:
        call = {"index": 0, "function": {"arguments": fragment}}
        chunks.append(
            {**base, "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]}
        )
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    return chunks


async def test_fine_grained_tool_streaming_translated(world: World) -> None:
    world.openai.script = [sse(_tool_chunks())]
    deltas: list[str] = []
    async with world.client("gpt-agent").beta.messages.stream(
        model="m",
        max_tokens=50,
        messages=USER,
        tools=[STREAMED_TOOL],
        betas=[FINE_GRAINED],  # type: ignore[list-item]
    ) as stream:
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                deltas.append(event.delta.partial_json)
        final = await stream.get_final_message()
    assert deltas == ['{"ci', 'ty": "Pa', 'ris"}']  # relayed as they came, unbuffered
    assert final.content[0].type == "tool_use" and final.content[0].input == {"city": "Paris"}
    assert world.openai.received[0].body["tools"][0]["function"]["name"] == "get_weather"


async def test_fine_grained_tool_streaming_native_passes_the_beta_and_the_bytes(world: World) -> None:
    message = tool_message(ToolUse("toolu_1", "get_weather", {"city": "Paris"}))
    world.anthropic.push(Reply(message, json_chunk=3))
    async with (
        world.client("claude-native")
        .with_options(default_headers={"anthropic-beta": FINE_GRAINED})
        .messages.with_streaming_response.create(
            model="m",
            max_tokens=50,
            messages=USER,
            tools=[STREAMED_TOOL],
            stream=True,  # type: ignore[list-item]
        ) as response
    ):
        raw = await response.read()
    [sent] = world.anthropic.requests
    assert FINE_GRAINED in sent.headers["anthropic-beta"].split(",")
    assert sent.body["tools"][0]["eager_input_streaming"] is True
    assert raw == sse_bytes(message, json_chunk=3)  # byte for byte, the input in 3-character deltas
