"""Bedrock end to end: the official OpenAI SDK → the sidecar → the fake Bedrock on a real port.

The fake checks every SigV4 signature (recomputed with botocore from the bytes it received) and
validates every body against botocore's bedrock-runtime model, so a pass here means the request
would be accepted by AWS as far as the published formats tell.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from openai.types.chat import ChatCompletionFunctionToolParam

from tests.builders import cluster
from tests.fakes import bedrock_upstream as fake
from tests.fakes.bedrock_upstream import (
    Answer,
    BedrockUpstream,
    Error,
    Stream,
    converse_response,
    exception_frame,
    stream_frames,
    text_response,
    tool_use,
    usage,
)
from tests.sidecar.harness import Sidecar, compile_yaml, running_sidecar

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": fake.TEST_ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": fake.TEST_SECRET_KEY,
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}
WEATHER: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


async def _transport_keeps_encoded_paths() -> bool:
    """Whether `astra_sidecar.sidecar.upstream` sends `%3A` as is (SigV4 signs the path it was given)."""
    from astra_sidecar.sidecar.protocols.base import UpstreamRequest
    from astra_sidecar.sidecar.upstream import AttemptTimeouts, HttpTransport

    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    server = TestServer(app)
    await server.start_server()
    transport = HttpTransport()
    try:
        url = str(server.make_url("/model/a%3A0/converse"))
        probe = cluster("bedrock", "a:0", base_url=url)
        request = UpstreamRequest(url=url.replace("a:0", "a%3A0"), headers={}, body=b"{}", stream=False)
        async with transport.open(probe, request, AttemptTimeouts(5, 5)) as response:
            await response.read()
    finally:
        await transport.close()
        await server.close()
    return seen == ["/model/a%3A0/converse"]


async def test_transport_sends_the_path_exactly_as_signed() -> None:
    assert await _transport_keeps_encoded_paths()


@pytest.fixture
async def bedrock(aiohttp_server: Any) -> AsyncIterator[tuple[BedrockUpstream, str]]:
    upstream = BedrockUpstream()
    server = await aiohttp_server(upstream.app)
    yield upstream, str(server.make_url("")).rstrip("/")


def _yaml(endpoint: str, extra: str = "") -> str:
    return f"""
    version: 1
    agents:
      assistant:
        model:
          provider: bedrock
          modelId: {MODEL}
          endpoint: {endpoint}
          region: us-east-1
          maxOutputTokens: 256
        systemPrompt: You are terse.
        promptCache: {{systemPrompt: true}}
{extra}
    """


@asynccontextmanager
async def sidecar_for(
    tmp_path: Path, endpoint: str, env: Mapping[str, str] = AWS_ENV
) -> AsyncIterator[Sidecar]:
    async with running_sidecar(compile_yaml(tmp_path, _yaml(endpoint)), env=env) as sidecar:
        yield sidecar


async def test_plain_answer_with_usage(tmp_path: Path, bedrock: tuple[BedrockUpstream, str]) -> None:
    upstream, endpoint = bedrock
    upstream.script(Answer(text_response("Paris.", token_usage=usage(20, 3, cache_read=100, cache_write=0))))
    async with sidecar_for(tmp_path, endpoint) as sidecar:
        raw = await sidecar.client().chat.completions.with_raw_response.create(
            model="assistant", messages=[{"role": "user", "content": "Capital of France?"}], temperature=1.5
        )
    answer = raw.parse()
    assert answer.choices[0].message.content == "Paris."
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (
        120,
        3,
        123,
    )
    assert (
        answer.usage.prompt_tokens_details is not None
        and answer.usage.prompt_tokens_details.cached_tokens == 100
    )
    assert raw.headers["x-astra-provider"] == "bedrock"
    received = upstream.requests[0]
    assert received.raw_path == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    assert received.canonical_request is not None and "%253A0" in received.canonical_request
    assert received.validation_errors is None
    assert received.json["system"] == [{"text": "You are terse."}, {"cachePoint": {"type": "default"}}]
    assert received.json["inferenceConfig"] == {"maxTokens": 256, "temperature": 1.0}
    assert received.json["messages"] == [{"role": "user", "content": [{"text": "Capital of France?"}]}]


async def test_streamed_answer_with_usage_chunk(tmp_path: Path, bedrock: tuple[BedrockUpstream, str]) -> None:
    upstream, endpoint = bedrock
    upstream.script(Stream(stream_frames(text_response("Hello there, friend."), piece=2), chunk=7))
    async with sidecar_for(tmp_path, endpoint) as sidecar:
        stream = await sidecar.client().chat.completions.create(
            model="assistant",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello there, friend."
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 15
    assert upstream.requests[0].operation == "converse-stream"


async def test_tool_calls_plain_and_streamed_agree(
    tmp_path: Path, bedrock: tuple[BedrockUpstream, str]
) -> None:
    upstream, endpoint = bedrock
    response = converse_response(
        [
            tool_use("tooluse_aa", "get_weather", {"city": "Paris"}),
            tool_use("tooluse_bb", "get_weather", {"city": "Rome"}),
        ],
        "tool_use",
    )
    upstream.script(Answer(response), Stream(stream_frames(response, piece=3), chunk=11))
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris and Rome?"}]
    async with sidecar_for(tmp_path, endpoint) as sidecar:
        client = sidecar.client()
        answer = await client.chat.completions.create(model="assistant", messages=messages, tools=[WEATHER])
        stream = await client.chat.completions.create(
            model="assistant", messages=messages, tools=[WEATHER], stream=True
        )
        chunks = [c async for c in stream]
        calls = answer.choices[0].message.tool_calls or []
        follow_up = [
            *messages,
            answer.choices[0].message.model_dump(exclude_none=True),
            *({"role": "tool", "tool_call_id": c.id, "content": "20C"} for c in calls),
        ]
        await client.chat.completions.create(model="assistant", messages=follow_up, tools=[WEATHER])
    plain = [(c.id, c.function.name, c.function.arguments) for c in calls]  # type: ignore[union-attr]
    assert plain == [
        ("tooluse_aa", "get_weather", '{"city":"Paris"}'),
        ("tooluse_bb", "get_weather", '{"city":"Rome"}'),
    ]
    assert answer.choices[0].finish_reason == "tool_calls"
    streamed: dict[int, list[str]] = {}
    for chunk in chunks:
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            entry = streamed.setdefault(tc.index, ["", "", ""])
            entry[0] = tc.id or entry[0]
            entry[1] = (tc.function.name if tc.function else None) or entry[1]
            entry[2] += (tc.function.arguments if tc.function else None) or ""
    assert [tuple(streamed[k]) for k in sorted(streamed)] == plain
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    third = upstream.requests[2].json
    assert third["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": "tooluse_aa", "content": [{"text": "20C"}]}},
        {"toolResult": {"toolUseId": "tooluse_bb", "content": [{"text": "20C"}]}},
    ]
    assert [r.validation_errors for r in upstream.requests] == [None, None, None]


async def test_throttling_is_retried(tmp_path: Path, bedrock: tuple[BedrockUpstream, str]) -> None:
    upstream, endpoint = bedrock
    upstream.script(
        Error(429, "ThrottlingException", "Too many requests"), Answer(text_response("after retry"))
    )
    async with sidecar_for(tmp_path, endpoint) as sidecar:
        raw = await sidecar.client().chat.completions.with_raw_response.create(
            model="assistant", messages=[{"role": "user", "content": "hi"}]
        )
    assert raw.parse().choices[0].message.content == "after retry"
    assert raw.headers["x-astra-attempts"] == "2"
    assert len(upstream.requests) == 2


async def test_validation_error_is_a_400_without_retry(
    tmp_path: Path, bedrock: tuple[BedrockUpstream, str]
) -> None:
    upstream, endpoint = bedrock
    upstream.script(Error(400, "ValidationException", "The model returned an invalid thing"))
    async with sidecar_for(tmp_path, endpoint) as sidecar:
        with pytest.raises(openai.BadRequestError) as caught:
            await sidecar.client().chat.completions.create(
                model="assistant", messages=[{"role": "user", "content": "hi"}]
            )
    assert caught.value.status_code == 400
    assert len(upstream.requests) == 1


async def test_exception_frame_mid_stream_reaches_the_client_as_an_error(
    tmp_path: Path, bedrock: tuple[BedrockUpstream, str]
) -> None:
    upstream, endpoint = bedrock
    frames = stream_frames(text_response("partial"), piece=3)[:3]
    upstream.script(Stream([*frames, exception_frame("modelStreamErrorException", "model broke")]))
    async with sidecar_for(tmp_path, endpoint) as sidecar:
        stream = await sidecar.client().chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        got: list[str] = []
        with pytest.raises(openai.APIError) as caught:
            async for chunk in stream:
                got.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(got) == "partia"
    assert caught.value.body == {
        "message": "model broke",
        "type": "server_error",
        "param": None,
        "code": "ModelStreamErrorException",
    }


async def test_bad_credentials_are_rejected_by_the_fake(
    tmp_path: Path, bedrock: tuple[BedrockUpstream, str]
) -> None:
    upstream, endpoint = bedrock
    env = {**AWS_ENV, "AWS_SECRET_ACCESS_KEY": "wrong-secret"}
    async with sidecar_for(tmp_path, endpoint, env) as sidecar:
        with pytest.raises(openai.PermissionDeniedError):
            await sidecar.client().chat.completions.create(
                model="assistant", messages=[{"role": "user", "content": "hi"}]
            )
    assert upstream.rejected == [
        "InvalidSignatureException:http://internal.amazon.com/coral/com.amazon.bedrock/"
    ]


async def test_bedrock_api_key_from_the_environment(
    tmp_path: Path, bedrock: tuple[BedrockUpstream, str]
) -> None:
    upstream, endpoint = bedrock
    env = {**AWS_ENV, "AWS_BEARER_TOKEN_BEDROCK": fake.TEST_BEARER_TOKEN, "AWS_SECRET_ACCESS_KEY": "unused"}
    async with sidecar_for(tmp_path, endpoint, env) as sidecar:
        answer = await sidecar.client().chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": "hi"}]
        )
    assert answer.choices[0].message.content == "Hello from Bedrock"
    assert upstream.requests[0].headers["authorization"] == f"Bearer {fake.TEST_BEARER_TOKEN}"
