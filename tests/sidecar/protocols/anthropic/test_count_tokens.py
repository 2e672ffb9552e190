"""`POST …/v1/messages/count_tokens` through the official `anthropic` SDK (`messages.count_tokens`)
on agents of every provider with a count API: Gemini's `:countTokens` and Bedrock's `CountTokens`
answer for agents there (the body translated as a message would be, the agent's system prompt
counted too), one attempt, errors in Anthropic's shape; the native claude case and the estimate are
in `test_coding_agents.py`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import anthropic
import pytest
from anthropic import AsyncAnthropic

from tests.fakes.anthropic_coding import counted_tokens as anthropic_counted
from tests.fakes.count_apis import bedrock_count_answer, counted_tokens
from tests.fakes.gemini_upstream import JsonReply, google_error
from tests.sidecar.count_world import BEDROCK_MODEL, ENV, GEMINI_MODEL, CountWorld, count_world
from tests.sidecar.protocols.anthropic.helpers import WEATHER

__all__ = ["count_world"]

MESSAGES: list[anthropic.types.MessageParam] = [{"role": "user", "content": "How many tokens is this?"}]


@pytest.fixture
async def client(count_world: CountWorld) -> AsyncIterator[Callable[[str], AsyncAnthropic]]:
    made: list[AsyncAnthropic] = []

    def make(agent: str) -> AsyncAnthropic:
        sdk = AsyncAnthropic(base_url=f"{count_world.sidecar.url}/v1/anthropic/{agent}", api_key="sk-caller",
                             max_retries=0, timeout=20)  # fmt: skip
        made.append(sdk)
        return sdk

    yield make
    for sdk in made:
        await sdk.close()


async def test_a_gemini_agent_counts_with_gemini_count_tokens(
    count_world: CountWorld, client: Callable[[str], AsyncAnthropic]
) -> None:
    counted = await client("on-gemini").messages.count_tokens(
        model="claude-anything", messages=MESSAGES, system="Count me.", tools=[WEATHER]
    )
    [sent] = count_world.gemini.requests
    assert (sent.surface, sent.method, sent.path) == (
        "ai_studio", "countTokens", f"/v1beta/models/{GEMINI_MODEL}:countTokens",
    )  # fmt: skip
    assert sent.headers["x-goog-api-key"] == ENV["GEMINI_API_KEY"]
    request = sent.body["generateContentRequest"]
    assert request["model"] == f"models/{GEMINI_MODEL}"
    assert request["contents"] == [{"role": "user", "parts": [{"text": "How many tokens is this?"}]}]
    system_text = " ".join(part["text"] for part in request["systemInstruction"]["parts"])
    assert "Gemini agent." in system_text and "Count me." in system_text
    assert request["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    expected = counted_tokens(request["contents"], request["systemInstruction"], request["tools"])
    assert counted.input_tokens == expected
    assert count_world.openai.received == []


async def test_a_bedrock_agent_counts_with_signed_count_tokens(
    count_world: CountWorld, client: Callable[[str], AsyncAnthropic]
) -> None:
    counted = await client("on-bedrock").messages.count_tokens(model="x", messages=MESSAGES, tools=[WEATHER])
    [sent] = count_world.bedrock.requests
    assert (sent.operation, sent.model_id, sent.validation_errors) == ("count-tokens", BEDROCK_MODEL, None)
    assert sent.raw_path == "/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/count-tokens"
    assert sent.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=")  # checked by the fake
    converse = sent.json["input"]["converse"]
    assert converse["messages"] == [{"role": "user", "content": [{"text": "How many tokens is this?"}]}]
    assert converse["system"] == [{"text": "Bedrock agent."}]
    assert converse["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"
    assert counted.input_tokens == bedrock_count_answer(sent.json)["inputTokens"]


async def test_a_provider_error_is_answered_in_anthropic_shape_after_one_attempt(
    count_world: CountWorld, client: Callable[[str], AsyncAnthropic]
) -> None:
    count_world.gemini.enqueue(JsonReply(google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded."), 429))
    with pytest.raises(anthropic.RateLimitError) as caught:
        await client("on-gemini").messages.count_tokens(model="x", messages=MESSAGES)
    assert caught.value.body["type"] == "error"  # type: ignore[index]
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert len(count_world.gemini.requests) == 1  # a side call: never retried


async def test_a_field_the_translation_cannot_serve_is_refused_before_counting(
    count_world: CountWorld, client: Callable[[str], AsyncAnthropic]
) -> None:
    servers = [{"type": "url", "url": "https://mcp.example.com/sse", "name": "example"}]
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client("on-bedrock").messages.count_tokens(
            model="x", messages=MESSAGES, extra_body={"mcp_servers": servers}
        )
    assert caught.value.body["error"]["message"] == (  # type: ignore[index]
        "mcp_servers: not served by this agent's provider (only Anthropic models have it)"
    )
    assert count_world.bedrock.requests == []


async def test_each_count_writes_one_access_line(
    count_world: CountWorld, client: Callable[[str], AsyncAnthropic], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="astra.access")
    await client("on-gemini").messages.count_tokens(model="x", messages=MESSAGES)
    with pytest.raises(anthropic.NotFoundError):
        await client("nobody").messages.count_tokens(model="x", messages=MESSAGES)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "astra.access"]
    assert [(line["route"], line["method"], line["path"], line["agent"], line["status"], line.get("error_code"))
            for line in lines] == [
        ("anthropic", "POST", "/v1/anthropic/on-gemini/v1/messages/count_tokens", "on-gemini", 200, None),
        ("anthropic", "POST", "/v1/anthropic/nobody/v1/messages/count_tokens", "nobody", 404, "model_not_found"),
    ]  # fmt: skip


async def test_a_native_count_forwards_the_callers_beta_and_version(
    count_world: CountWorld, client: Callable[[str], AsyncAnthropic]
) -> None:
    sdk = client("on-claude").with_options(default_headers={"anthropic-version": "2026-10-21"})
    counted = await sdk.beta.messages.count_tokens(
        model="x", messages=MESSAGES, betas=["context-1m-2025-08-07"]
    )
    [sent] = count_world.anthropic.counts
    assert "context-1m-2025-08-07" in sent.headers["anthropic-beta"].split(",")
    assert sent.headers["anthropic-version"] == "2026-10-21"
    assert sent.body["system"][0]["text"] == "Claude agent."
    assert counted.input_tokens == anthropic_counted(sent.body)
