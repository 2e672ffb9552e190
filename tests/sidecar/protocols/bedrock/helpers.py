"""What the Bedrock adapter tests share: the cluster and agent, request builders, the Converse body
check, and the plain/streamed answer helpers used to compare the two."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

import orjson
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from astra_sidecar.compiler.table import (
    Agent,
    BreakerPolicy,
    Cluster,
    Credentials,
    RequestRules,
    RetryPolicy,
    Timeouts,
    ToolPolicy,
)
from astra_sidecar.sidecar.protocols.base import AuthMaterial, AwsCredentials, Secret
from astra_sidecar.sidecar.protocols.bedrock import BedrockAdapter
from tests.fakes import bedrock_upstream as fake
from tests.fakes.bedrock_upstream import converse_response, text_response, tool_use

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
ENCODED_MODEL = "anthropic.claude-3-haiku-20240307-v1%3A0"
AWS = AwsCredentials(fake.TEST_ACCESS_KEY, Secret(fake.TEST_SECRET_KEY))
AUTH = AuthMaterial(aws=AWS)
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake png bytes").decode()
ADAPTER = BedrockAdapter()


def make_cluster(**overrides: Any) -> Cluster:
    fields: dict[str, Any] = {
        "key": f"bedrock:{MODEL}:",
        "provider": "bedrock",
        "wire": "bedrock",
        "model_id": MODEL,
        "base_url": "https://bedrock-runtime.us-east-1.amazonaws.com",
        "auth": "sigv4",
        "credentials": Credentials(mode="aws", required=False),
        "base_url_env": None,
        "headers": MappingProxyType({}),
        "breaker": BreakerPolicy(),
        "rules": RequestRules(temperature_max=1.0, max_choices=1),
        "region": "us-east-1",
    }
    fields.update(overrides)
    return Cluster(**fields)


def make_agent(**overrides: Any) -> Agent:
    fields: dict[str, Any] = {
        "id": "helper",
        "display_name": None,
        "tier": None,
        "plan": (f"bedrock:{MODEL}:",),
        "max_context_tokens": None,
        "max_output_tokens": None,
        "temperature": None,
        "system_prompt": None,
        "tools": ToolPolicy(),
        "retry": RetryPolicy(),
        "timeouts": Timeouts(),
        "request_timeout_ms": 60000,
    }
    fields.update(overrides)
    return Agent(**fields)


CLUSTER = make_cluster()
AGENT = make_agent()


def chat(*messages: dict[str, Any], **params: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": list(messages), **params}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def converse(body: dict[str, Any], agent: Agent = AGENT, cluster: Cluster = CLUSTER) -> dict[str, Any]:
    """The Converse body the adapter sends, after checking it with botocore's validator."""
    request = ADAPTER.build_request(cluster, agent, body, AUTH)
    sent: dict[str, Any] = orjson.loads(request.body)
    operation = "ConverseStream" if request.stream else "Converse"
    assert fake.validation_errors(operation, cluster.model_id, sent) is None
    return sent


def weather_tool(name: str = "get_weather") -> dict[str, Any]:
    params = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    return {"type": "function", "function": {"name": name, "description": "Weather", "parameters": params}}


def call(id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


HISTORY = (
    user("Weather?"),
    {"role": "assistant", "content": None, "tool_calls": [call("t1", "get_weather", '{"city":"Oslo"}')]},
    {"role": "tool", "tool_call_id": "t1", "content": "-3C"},
)


def parse(response: dict[str, Any], request: dict[str, Any] | None = None) -> ChatCompletion:
    completion = ADAPTER.parse_response(CLUSTER, request or chat(user("x")), orjson.dumps(response))
    return ChatCompletion.model_validate_json(completion.body)


def translate(
    frames: Iterable[bytes], *, split: int | None = None, include_usage: bool = False
) -> list[ChatCompletionChunk]:
    """Feed the frames (re-split every `split` bytes) and validate every chunk with the SDK type."""
    request = chat(user("x"), stream=True)
    if include_usage:
        request["stream_options"] = {"include_usage": True}
    translator = ADAPTER.stream_translator(CLUSTER, request)
    data = b"".join(frames)
    pieces = list(frames) if split is None else [data[i : i + split] for i in range(0, len(data), split)]
    raw = [chunk for piece in pieces for chunk in translator.feed(piece)] + translator.finish()
    chunks = [ChatCompletionChunk.model_validate_json(chunk) for chunk in raw]
    assert len({c.id for c in chunks}) == 1
    return chunks


def reassemble(
    chunks: list[ChatCompletionChunk],
) -> tuple[str | None, list[tuple[str, str, str]], str | None]:
    text: list[str] = []
    calls: dict[int, list[str]] = {}
    finish = None
    for chunk in chunks:
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content:
                text.append(delta.content)
            for tc in delta.tool_calls or ():
                entry = calls.setdefault(tc.index, ["", "", ""])
                if tc.id:
                    entry[0] = tc.id
                if tc.function and tc.function.name:
                    entry[1] = tc.function.name
                if tc.function and tc.function.arguments:
                    entry[2] += tc.function.arguments
            finish = choice.finish_reason or finish
    return ("".join(text) or None), [tuple(calls[k]) for k in sorted(calls)], finish  # type: ignore[misc]


def plain(response: dict[str, Any]) -> tuple[str | None, list[tuple[str, str, str]], str | None]:
    parsed = parse(response)
    message = parsed.choices[0].message
    calls = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or ()]  # type: ignore[union-attr]
    return message.content, calls, parsed.choices[0].finish_reason


RESPONSES = {
    "text": text_response("Hello there, how can I help you today?"),
    "single_tool": converse_response([tool_use("tooluse_x1", "get_weather", {"city": "Paris"})], "tool_use"),
    "parallel_tools": converse_response(
        [
            {"text": "Checking both."},
            tool_use("tooluse_p1", "get_weather", {"city": "Paris", "units": "metric"}),
            tool_use("tooluse_p2", "get_time", {"zone": "Europe/Rome", "nested": {"a": [1, 2, {"b": "ü"}]}}),
        ],
        "tool_use",
    ),
    "no_argument_tool": converse_response([tool_use("tooluse_n", "now", {})], "tool_use"),
    "max_tokens": text_response("cut sho", "max_tokens"),
}
