"""The Bedrock Converse adapter: request/response/stream translation, errors, SigV4 signing."""

from __future__ import annotations

import base64
import dataclasses
import itertools
from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

import aiohttp
import orjson
import pytest
import yarl
from botocore.credentials import ReadOnlyCredentials
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from astra_sidecar.compiler.table import (
    Agent,
    BreakerPolicy,
    Cluster,
    Credentials,
    PromptCache,
    RequestRules,
    RetryPolicy,
    Timeouts,
    ToolPolicy,
)
from astra_sidecar.sidecar.errors import (
    ClientError,
    UpstreamError,
    UpstreamMalformedError,
    UpstreamStreamError,
)
from astra_sidecar.sidecar.protocols.base import AuthMaterial, AwsCredentials, Failure, Secret
from astra_sidecar.sidecar.protocols.bedrock import BedrockAdapter
from tests.fakes import bedrock_upstream as fake
from tests.fakes.bedrock_upstream import (
    Answer,
    BedrockUpstream,
    Cut,
    Error,
    Stream,
    converse_response,
    encode_frame,
    event_frame,
    exception_frame,
    stream_frames,
    text_response,
    tool_use,
    usage,
)

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


# --- request: URL, headers, signature -----------------------------------------------------------


def test_plain_request_url_headers_and_body() -> None:
    body = chat({"role": "system", "content": "Be brief."}, user("Hi"), max_tokens=50)
    request = ADAPTER.build_request(CLUSTER, AGENT, body, AUTH)
    assert request.url == f"https://bedrock-runtime.us-east-1.amazonaws.com/model/{ENCODED_MODEL}/converse"
    assert request.stream is False
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={fake.TEST_ACCESS_KEY}/")
    assert (
        "/us-east-1/bedrock/aws4_request, SignedHeaders=accept;content-type;host;x-amz-date,"
        in (request.headers["Authorization"])
    )
    assert "X-Amz-Security-Token" not in request.headers
    assert orjson.loads(request.body) == {
        "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 50},
    }


def test_stream_request_uses_converse_stream_and_event_stream_accept() -> None:
    request = ADAPTER.build_request(CLUSTER, AGENT, chat(user("Hi"), stream=True), AUTH)
    assert request.url.endswith(f"/model/{ENCODED_MODEL}/converse-stream")
    assert request.stream is True
    assert request.headers["Accept"] == "application/vnd.amazon.eventstream"
    assert fake.validation_errors("ConverseStream", MODEL, orjson.loads(request.body)) is None


@pytest.mark.parametrize(
    ("model_id", "encoded"),
    [
        ("us.anthropic.claude-3-5-sonnet-20241022-v2:0", "us.anthropic.claude-3-5-sonnet-20241022-v2%3A0"),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-2-1b-instruct-v1:0",
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.meta.llama3-2-1b-instruct-v1%3A0",
        ),
        ("amazon.nova-lite-v1:0", "amazon.nova-lite-v1%3A0"),
    ],
)
def test_model_id_is_percent_encoded_in_the_path(model_id: str, encoded: str) -> None:
    request = ADAPTER.build_request(make_cluster(model_id=model_id), AGENT, chat(user("x")), AUTH)
    assert request.url == f"https://bedrock-runtime.us-east-1.amazonaws.com/model/{encoded}/converse"


def test_empty_base_url_means_the_regional_endpoint() -> None:
    cluster = make_cluster(base_url="", region="eu-west-3")
    request = ADAPTER.build_request(cluster, AGENT, chat(user("x")), AUTH)
    assert request.url == f"https://bedrock-runtime.eu-west-3.amazonaws.com/model/{ENCODED_MODEL}/converse"
    assert "/eu-west-3/bedrock/aws4_request" in request.headers["Authorization"]


def test_region_is_read_from_a_regional_base_url() -> None:
    cluster = make_cluster(base_url="https://bedrock-runtime-fips.us-west-2.amazonaws.com", region=None)
    request = ADAPTER.build_request(cluster, AGENT, chat(user("x")), AUTH)
    assert "/us-west-2/bedrock/aws4_request" in request.headers["Authorization"]


def test_missing_region_is_a_configuration_failure() -> None:
    cluster = make_cluster(base_url="", region=None)
    with pytest.raises(UpstreamError) as raised:
        ADAPTER.build_request(cluster, AGENT, chat(user("x")), AUTH)
    assert raised.value.cluster == cluster.key
    assert raised.value.failure.status == 500
    assert raised.value.failure.code == "bedrock_misconfigured"
    with pytest.raises(UpstreamError):
        ADAPTER.build_request(
            make_cluster(base_url="http://127.0.0.1:1", region=None), AGENT, chat(user("x")), AUTH
        )


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def test_signature_recomputed_independently_by_botocore_matches() -> None:
    request = ADAPTER.build_request(CLUSTER, AGENT, chat(user("Hi")), AUTH)
    headers = _lower(request.headers)
    headers["host"] = "bedrock-runtime.us-east-1.amazonaws.com"
    authorization = fake._auth_parts(headers["authorization"])
    url = yarl.URL(request.url, encoded=True)
    canonical, signature = fake.recompute_signature(
        headers,
        url.raw_path,
        request.body,
        authorization["SignedHeaders"].split(";"),
        ReadOnlyCredentials(fake.TEST_ACCESS_KEY, fake.TEST_SECRET_KEY, None),
        "us-east-1",
        "bedrock",
        scheme="https",
    )
    assert signature == authorization["Signature"]
    # The already-encoded model id is encoded again in the canonical request.
    assert canonical.splitlines()[1] == "/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse"


def test_session_token_is_sent_and_signed() -> None:
    creds = AwsCredentials("ASIAFAKE", Secret("secret"), Secret("session-token"))
    request = ADAPTER.build_request(CLUSTER, AGENT, chat(user("Hi")), AuthMaterial(aws=creds))
    assert request.headers["X-Amz-Security-Token"] == "session-token"
    assert "x-amz-security-token" in request.headers["Authorization"].split("SignedHeaders=")[1]


def test_bedrock_api_key_is_sent_as_bearer_and_wins_over_sigv4() -> None:
    auth = AuthMaterial(token=Secret("ABSK-key"), aws=AWS)
    request = ADAPTER.build_request(CLUSTER, AGENT, chat(user("Hi")), auth)
    assert request.headers["Authorization"] == "Bearer ABSK-key"
    assert "X-Amz-Date" not in request.headers


def test_cluster_headers_are_sent_and_signed() -> None:
    cluster = make_cluster(headers=MappingProxyType({"X-Team": "search"}))
    request = ADAPTER.build_request(cluster, AGENT, chat(user("Hi")), AUTH)
    assert request.headers["X-Team"] == "search"
    assert "x-team" in request.headers["Authorization"].split("SignedHeaders=")[1]


# --- request: messages --------------------------------------------------------------------------


def test_system_and_developer_messages_become_system_blocks_and_same_roles_merge() -> None:
    sent = converse(
        chat(
            {"role": "system", "content": "Rule one."},
            {"role": "developer", "content": [{"type": "text", "text": "Rule two."}]},
            user("a"),
            user([{"type": "text", "text": "b"}, {"type": "text", "text": ""}]),
            {"role": "assistant", "content": "c"},
            {"role": "assistant", "content": [{"type": "text", "text": "d"}]},
            user("e"),
        )
    )
    assert sent["system"] == [{"text": "Rule one."}, {"text": "Rule two."}]
    assert sent["messages"] == [
        {"role": "user", "content": [{"text": "a"}, {"text": "b"}]},
        {"role": "assistant", "content": [{"text": "c"}, {"text": "d"}]},
        {"role": "user", "content": [{"text": "e"}]},
    ]


def test_system_cache_point_when_the_agent_caches_its_system_prompt() -> None:
    agent = make_agent(prompt_cache=PromptCache(system_prompt=True))
    sent = converse(chat({"role": "system", "content": "Long rules."}, user("x")), agent)
    assert sent["system"] == [{"text": "Long rules."}, {"cachePoint": {"type": "default"}}]


def test_tool_history_parallel_calls_and_merged_results() -> None:
    sent = converse(
        chat(
            user("Weather in Paris and Rome?"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    call("tooluse_a", "get_weather", '{"city": "Paris"}'),
                    call("tooluse_b", "get_weather", '{"city": "Rome"}'),
                ],
            },
            {"role": "tool", "tool_call_id": "tooluse_a", "content": "18C"},
            {"role": "tool", "tool_call_id": "tooluse_b", "content": [{"type": "text", "text": "21C"}]},
            user("Thanks. Which is warmer?"),
            tools=[weather_tool()],
        )
    )
    assert sent["messages"] == [
        {"role": "user", "content": [{"text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {"toolUse": {"toolUseId": "tooluse_a", "name": "get_weather", "input": {"city": "Paris"}}},
                {"toolUse": {"toolUseId": "tooluse_b", "name": "get_weather", "input": {"city": "Rome"}}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "tooluse_a", "content": [{"text": "18C"}]}},
                {"toolResult": {"toolUseId": "tooluse_b", "content": [{"text": "21C"}]}},
                {"text": "Thanks. Which is warmer?"},
            ],
        },
    ]
    spec = sent["toolConfig"]["tools"][0]["toolSpec"]
    assert spec == {
        "name": "get_weather",
        "description": "Weather",
        "inputSchema": {"json": weather_tool()["function"]["parameters"]},
    }
    assert "toolChoice" not in sent["toolConfig"]


def test_assistant_text_and_tool_call_share_one_turn_and_empty_arguments_mean_empty_object() -> None:
    sent = converse(
        chat(
            user("time?"),
            {"role": "assistant", "content": "Checking.", "tool_calls": [call("t1", "now", "")]},
            {"role": "tool", "tool_call_id": "t1", "content": "noon"},
            tools=[{"type": "function", "function": {"name": "now"}}],
        )
    )
    assert sent["messages"][1] == {
        "role": "assistant",
        "content": [{"text": "Checking."}, {"toolUse": {"toolUseId": "t1", "name": "now", "input": {}}}],
    }
    assert sent["toolConfig"]["tools"] == [
        {"toolSpec": {"name": "now", "inputSchema": {"json": {"type": "object", "properties": {}}}}}
    ]


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", '"text"'])
def test_tool_call_arguments_must_be_a_json_object(arguments: str) -> None:
    body = chat(user("x"), {"role": "assistant", "content": None, "tool_calls": [call("t1", "f", arguments)]})
    with pytest.raises(ClientError) as raised:
        ADAPTER.build_request(CLUSTER, AGENT, body, AUTH)
    assert raised.value.status == 400
    assert "messages[1].tool_calls[0]" in raised.value.failure.message


def test_data_url_image_becomes_an_image_block() -> None:
    sent = converse(
        chat(
            user(
                [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"},
                    },
                    {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{PNG}"}},
                ]
            )
        )
    )
    assert sent["messages"][0]["content"] == [
        {"text": "What is this?"},
        {"image": {"format": "png", "source": {"bytes": PNG}}},
        {"image": {"format": "jpeg", "source": {"bytes": PNG}}},
    ]


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://example.com/cat.png", "unsupported_image_url"),
        ("http://example.com/cat.png", "unsupported_image_url"),
        (f"data:image/tiff;base64,{PNG}", "invalid_value"),
        ("data:image/png;base64,@@not-base64@@", "invalid_value"),
        ("data:image/png,rawbytes", "invalid_value"),
    ],
)
def test_unusable_images_are_a_clear_400(url: str, code: str) -> None:
    body = chat(user([{"type": "image_url", "image_url": {"url": url}}]))
    with pytest.raises(ClientError) as raised:
        ADAPTER.build_request(CLUSTER, AGENT, body, AUTH)
    assert raised.value.status == 400
    assert raised.value.failure.code == code
    assert raised.value.failure.message.startswith("messages[0]:")
    assert raised.value.failure.param == "messages"


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (
            chat(user([{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}])),
            "messages",
            "unsupported_content",
        ),
        (chat({"role": "function", "name": "f", "content": "x"}), "messages", "invalid_value"),
        (chat(user("x"), n=2), "n", "unsupported_parameter"),
        (
            chat(user("x"), tools=[{"type": "custom", "custom": {"name": "grammar"}}]),
            "tools",
            "unsupported_tool",
        ),
        (
            chat(
                user("x"),
                tools=[weather_tool()],
                tool_choice={"type": "function", "function": {"name": "other"}},
            ),
            "tool_choice",
            "invalid_value",
        ),
        (chat(user("x"), tools=[weather_tool()], tool_choice="sometimes"), "tool_choice", "invalid_value"),
        ({"model": MODEL, "messages": []}, "messages", "invalid_value"),
        (chat(user("x"), {"role": "tool", "content": "no id"}), "messages", "invalid_value"),
    ],
)
def test_unsupported_requests_are_rejected_with_400(body: dict[str, Any], param: str, code: str) -> None:
    with pytest.raises(ClientError) as raised:
        ADAPTER.build_request(CLUSTER, AGENT, body, AUTH)
    failure = raised.value.failure
    assert (failure.status, failure.error_type, failure.param, failure.code) == (
        400,
        "invalid_request_error",
        param,
        code,
    )


# --- request: tools, inference config, JSON mode -----------------------------------------------


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"auto": {}}),
        ("required", {"any": {}}),
        ({"type": "function", "function": {"name": "get_time"}}, {"tool": {"name": "get_time"}}),
    ],
)
def test_tool_choice_mapping(choice: Any, expected: dict[str, Any]) -> None:
    tools = [weather_tool(), weather_tool("get_time")]
    sent = converse(chat(user("x"), tools=tools, tool_choice=choice))
    assert sent["toolConfig"]["toolChoice"] == expected
    assert [t["toolSpec"]["name"] for t in sent["toolConfig"]["tools"]] == ["get_weather", "get_time"]


def test_no_tool_choice_means_bedrock_default() -> None:
    sent = converse(chat(user("x"), tools=[weather_tool()]))
    assert "toolChoice" not in sent["toolConfig"]


def test_allowed_tools_narrows_the_list() -> None:
    choice = {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "required",
            "tools": [{"type": "function", "function": {"name": "get_time"}}],
        },
    }
    sent = converse(chat(user("x"), tools=[weather_tool(), weather_tool("get_time")], tool_choice=choice))
    assert [t["toolSpec"]["name"] for t in sent["toolConfig"]["tools"]] == ["get_time"]
    assert sent["toolConfig"]["toolChoice"] == {"any": {}}


def test_tool_choice_none_omits_tools_without_tool_history() -> None:
    sent = converse(chat(user("x"), tools=[weather_tool()], tool_choice="none"))
    assert "toolConfig" not in sent


HISTORY = (
    user("Weather?"),
    {"role": "assistant", "content": None, "tool_calls": [call("t1", "get_weather", '{"city":"Oslo"}')]},
    {"role": "tool", "tool_call_id": "t1", "content": "-3C"},
)


def test_tool_choice_none_keeps_tool_config_when_history_has_tool_blocks() -> None:
    sent = converse(chat(*HISTORY, tools=[weather_tool()], tool_choice="none"))
    assert sent["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "Weather",
                    "inputSchema": {"json": weather_tool()["function"]["parameters"]},
                }
            }
        ]
    }


def test_tool_history_without_tools_gets_stub_tool_specs() -> None:
    sent = converse(chat(*HISTORY))
    assert sent["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "inputSchema": {"json": {"type": "object", "properties": {}}},
                }
            }
        ]
    }


def test_tools_cache_point_when_the_agent_caches_tools() -> None:
    agent = make_agent(prompt_cache=PromptCache(tools=True))
    sent = converse(chat(user("x"), tools=[weather_tool()]), agent)
    assert sent["toolConfig"]["tools"][-1] == {"cachePoint": {"type": "default"}}
    assert len(sent["toolConfig"]["tools"]) == 2


def test_function_strict_is_not_forwarded() -> None:
    tool = weather_tool()
    tool["function"]["strict"] = True
    sent = converse(chat(user("x"), tools=[tool]))
    assert "strict" not in sent["toolConfig"]["tools"][0]["toolSpec"]


@pytest.mark.parametrize(
    ("params", "agent_max", "expected"),
    [
        ({"max_completion_tokens": 100, "max_tokens": 50}, 10, {"maxTokens": 100}),
        ({"max_tokens": 50}, 10, {"maxTokens": 50}),
        ({}, 10, {"maxTokens": 10}),
        ({"temperature": 1.7, "top_p": 0.9}, None, {"temperature": 1.0, "topP": 0.9}),
        ({"temperature": 0}, None, {"temperature": 0.0}),
        ({"stop": "END"}, None, {"stopSequences": ["END"]}),
        ({"stop": ["a", "b"]}, None, {"stopSequences": ["a", "b"]}),
    ],
)
def test_inference_config(params: dict[str, Any], agent_max: int | None, expected: dict[str, Any]) -> None:
    sent = converse(chat(user("x"), **params), make_agent(max_output_tokens=agent_max))
    assert sent["inferenceConfig"] == expected


def test_no_inference_config_when_nothing_is_set_and_dropped_params() -> None:
    sent = converse(
        chat(
            user("x"), seed=7, presence_penalty=0.5, user="u1", parallel_tool_calls=False, logprobs=False, n=1
        )
    )
    assert sent == {"messages": [{"role": "user", "content": [{"text": "x"}]}]}


def test_json_schema_response_format_maps_to_output_config_with_a_string_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False}
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
    sent = converse(chat(user("x"), response_format=fmt))
    assert sent["outputConfig"] == {
        "textFormat": {
            "type": "json_schema",
            "structure": {"jsonSchema": {"schema": orjson.dumps(schema).decode(), "name": "answer"}},
        }
    }


def test_json_object_and_text_response_formats_are_not_forwarded() -> None:
    assert "outputConfig" not in converse(chat(user("x"), response_format={"type": "json_object"}))
    assert "outputConfig" not in converse(chat(user("x"), response_format={"type": "text"}))


# --- response -----------------------------------------------------------------------------------


def parse(response: dict[str, Any], request: dict[str, Any] | None = None) -> ChatCompletion:
    completion = ADAPTER.parse_response(CLUSTER, request or chat(user("x")), orjson.dumps(response))
    return ChatCompletion.model_validate_json(completion.body)


def test_text_response() -> None:
    completion = ADAPTER.parse_response(CLUSTER, chat(user("x")), orjson.dumps(text_response("Hello!")))
    parsed = ChatCompletion.model_validate_json(completion.body)
    assert parsed.model == MODEL
    assert parsed.choices[0].message.content == "Hello!"
    assert parsed.choices[0].message.tool_calls is None
    assert parsed.choices[0].finish_reason == "stop"
    assert parsed.usage is not None
    assert (parsed.usage.prompt_tokens, parsed.usage.completion_tokens, parsed.usage.total_tokens) == (
        10,
        5,
        15,
    )
    assert completion.usage is not None and completion.usage.prompt_tokens == 10


def test_parallel_tool_calls_response() -> None:
    response = converse_response(
        [
            tool_use("tooluse_1", "get_weather", {"city": "Paris"}),
            tool_use("tooluse_2", "get_weather", {"city": "Rome"}),
        ],
        "tool_use",
    )
    parsed = parse(response)
    message = parsed.choices[0].message
    assert message.content is None
    assert parsed.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [  # type: ignore[union-attr]
        ("tooluse_1", "get_weather", '{"city":"Paris"}'),
        ("tooluse_2", "get_weather", '{"city":"Rome"}'),
    ]


def test_text_and_tool_call_response_skips_reasoning_blocks() -> None:
    response = converse_response(
        [
            {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "sig"}}},
            {"text": "Let me check."},
            tool_use("t1", "now", {}),
        ],
        "tool_use",
    )
    message = parse(response).choices[0].message
    assert message.content == "Let me check."
    assert message.tool_calls is not None and message.tool_calls[0].function.arguments == "{}"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("model_context_window_exceeded", "length"),
        ("malformed_model_output", "stop"),
        ("malformed_tool_use", "stop"),
        ("something_new", "stop"),
    ],
)
def test_stop_reason_mapping(stop_reason: str, finish: str) -> None:
    assert parse(text_response("x", stop_reason)).choices[0].finish_reason == finish


def test_cache_token_usage() -> None:
    parsed = parse(text_response("x", token_usage=usage(10, 5, cache_read=100, cache_write=20)))
    assert parsed.usage is not None
    assert parsed.usage.prompt_tokens == 130
    assert parsed.usage.completion_tokens == 5
    assert parsed.usage.total_tokens == 135
    assert parsed.usage.prompt_tokens_details is not None
    assert parsed.usage.prompt_tokens_details.cached_tokens == 100


def test_cache_writes_are_reported_plain_and_streamed() -> None:
    response = text_response("x", token_usage=usage(10, 5, cache_read=100, cache_write=20))
    completion = ADAPTER.parse_response(CLUSTER, chat(user("x")), orjson.dumps(response))
    assert completion.usage is not None and completion.usage.cache_write_tokens == 20
    details = {"cached_tokens": 100, "cache_write_tokens": 20}
    assert orjson.loads(completion.body)["usage"]["prompt_tokens_details"] == details
    streamed = translate(stream_frames(response), include_usage=True)[-1]
    assert (
        orjson.loads(streamed.model_dump_json(exclude_unset=True))["usage"]["prompt_tokens_details"]
        == details
    )
    without = parse(text_response("x", token_usage=usage(10, 5, cache_read=100)))
    assert orjson.loads(without.model_dump_json(exclude_unset=True))["usage"]["prompt_tokens_details"] == {
        "cached_tokens": 100
    }


@pytest.mark.parametrize("raw", [b"not json", b"{}", b'{"output": {}}', b"[]"])
def test_malformed_response_is_an_upstream_failure(raw: bytes) -> None:
    with pytest.raises(UpstreamMalformedError) as raised:
        ADAPTER.parse_response(CLUSTER, chat(user("x")), raw)
    failure = raised.value.failure
    assert (failure.status, failure.code, failure.retryable, failure.breaker_counts) == (
        502,
        "upstream_malformed",
        True,
        True,
    )
    assert raised.value.cluster == CLUSTER.key


# --- event-stream framing (the fake's encoder, checked by botocore's decoder) -------------------


def test_fake_frames_decode_with_botocore_event_stream_buffer() -> None:
    headers: dict[str, fake.HeaderValue] = {
        ":event-type": "x",
        "flag": True,
        "off": False,
        "count": 7,
        "raw": b"\x00\x01",
    }
    frames = encode_frame(headers, b'{"a":1}') + encode_frame({":message-type": "event"}, b"")
    buffer = EventStreamBuffer()
    buffer.add_data(frames)
    messages = list(buffer)
    assert [m.headers for m in messages] == [headers, {":message-type": "event"}]
    assert [m.payload for m in messages] == [b'{"a":1}', b""]


def test_corrupted_frame_fails_botocore_crc_check() -> None:
    frame = bytearray(event_frame("messageStart", {"role": "assistant"}))
    frame[-6] ^= 0xFF
    buffer = EventStreamBuffer()
    buffer.add_data(bytes(frame))
    with pytest.raises(ChecksumMismatch):
        list(buffer)


# --- streaming ----------------------------------------------------------------------------------


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


SPLITS = [None, 1, 2, 5, 7, 13, 64, 100_000]

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


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_streamed_answer_reassembles_to_the_plain_answer(name: str, split: int | None) -> None:
    response = RESPONSES[name]
    chunks = translate(stream_frames(response, piece=4), split=split)
    assert reassemble(chunks) == plain(response)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason is not None
    assert all(c.usage is None for c in chunks)
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=40))
def test_any_split_of_the_byte_stream_gives_the_same_answer(cuts: list[int]) -> None:
    response = RESPONSES["parallel_tools"]
    data = b"".join(stream_frames(response, piece=5))
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    pieces = [data[a:b] for a, b in itertools.pairwise(points)]
    assert reassemble(translate(pieces)) == plain(response)


def test_stream_chunk_shapes_for_tool_calls() -> None:
    frames = stream_frames(RESPONSES["parallel_tools"], piece=6)
    raw = [orjson.loads(c.model_dump_json(exclude_unset=True)) for c in translate(frames)]
    deltas = [c["choices"][0]["delta"] for c in raw]
    assert deltas[0] == {"role": "assistant", "content": ""}
    headers = [d["tool_calls"][0] for d in deltas if "tool_calls" in d and "id" in d["tool_calls"][0]]
    assert headers == [
        {
            "index": 0,
            "id": "tooluse_p1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
        {
            "index": 1,
            "id": "tooluse_p2",
            "type": "function",
            "function": {"name": "get_time", "arguments": ""},
        },
    ]
    fragments = [d["tool_calls"][0] for d in deltas if "tool_calls" in d and "id" not in d["tool_calls"][0]]
    assert all(set(f) == {"index", "function"} and set(f["function"]) == {"arguments"} for f in fragments)
    assert deltas[-1] == {}


@pytest.mark.parametrize("split", [None, 1, 9])
def test_usage_chunk_after_finish_only_with_include_usage(split: int | None) -> None:
    response = text_response("Hi!", token_usage=usage(12, 3, cache_read=40, cache_write=8))
    chunks = translate(stream_frames(response), split=split, include_usage=True)
    assert chunks[-2].choices[0].finish_reason == "stop"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (60, 3, 63)
    assert (
        last.usage.prompt_tokens_details is not None and last.usage.prompt_tokens_details.cached_tokens == 40
    )
    assert all(orjson.loads(c.model_dump_json())["usage"] is None for c in chunks[:-1])
    assert all("usage" in orjson.loads(c.model_dump_json(exclude_unset=True)) for c in chunks)


def test_translator_usage_is_recorded_without_include_usage() -> None:
    translator = ADAPTER.stream_translator(CLUSTER, chat(user("x"), stream=True))
    for frame in stream_frames(text_response("a", token_usage=usage(7, 2))):
        translator.feed(frame)
    translator.finish()
    assert translator.usage is not None
    assert (translator.usage.prompt_tokens, translator.usage.completion_tokens) == (7, 2)


def test_metadata_before_message_stop_still_puts_usage_last() -> None:
    frames = stream_frames(text_response("a"), metadata=False)
    metadata = event_frame("metadata", {"usage": usage(1, 1), "metrics": {"latencyMs": 1}})
    chunks = translate([*frames[:-1], metadata, frames[-1]], include_usage=True)
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


def test_stream_without_metadata_ends_after_the_finish_chunk() -> None:
    chunks = translate(stream_frames(text_response("a"), metadata=False), include_usage=True)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_unknown_events_and_extra_payload_keys_are_ignored() -> None:
    frames = stream_frames(text_response("ok"))
    extra = [
        event_frame("somethingNew", {"x": 1}),
        event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "!"}, "p": "padding"}),
        event_frame(
            "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "hm"}}}
        ),
    ]
    chunks = translate([frames[0], *extra, *frames[1:]])
    assert reassemble(chunks)[0] == "!ok"


def test_message_without_message_start_still_begins_with_the_role() -> None:
    chunks = translate(stream_frames(text_response("hey"))[1:])
    assert chunks[0].choices[0].delta.role == "assistant"


def _stream_failure(frames: list[bytes], *, split: int | None = None) -> tuple[list[bytes], Failure]:
    translator = ADAPTER.stream_translator(CLUSTER, chat(user("x"), stream=True))
    data = b"".join(frames)
    pieces = frames if split is None else [data[i : i + split] for i in range(0, len(data), split)]
    out: list[bytes] = []
    with pytest.raises(UpstreamStreamError) as raised:
        for piece in pieces:
            out.extend(translator.feed(piece))
        translator.finish()
    for chunk in out:
        ChatCompletionChunk.model_validate_json(chunk)
    assert raised.value.cluster == CLUSTER.key
    return out, raised.value.failure


@pytest.mark.parametrize("split", [None, 1, 11])
def test_exception_frame_mid_stream(split: int | None) -> None:
    frames = stream_frames(text_response("partial answer"))[:3]
    frames.append(exception_frame("throttlingException", "Too many tokens, please wait."))
    out, failure = _stream_failure(frames, split=split)
    assert b"".join(out).count(b'"content"') >= 2
    assert failure == Failure(
        status=429,
        error_type="rate_limit_error",
        message="Too many tokens, please wait.",
        code="ThrottlingException",
        retryable=True,
        breaker_counts=True,
    )


def test_exception_in_the_same_read_as_text_returns_text_first_then_raises() -> None:
    translator = ADAPTER.stream_translator(CLUSTER, chat(user("x"), stream=True))
    frames = stream_frames(text_response("abc"), piece=10)[:2]
    data = b"".join([*frames, exception_frame("internalServerException", "boom")])
    chunks = translator.feed(data)
    assert [ChatCompletionChunk.model_validate_json(c).choices[0].delta.content for c in chunks] == [
        "",
        "abc",
    ]
    with pytest.raises(UpstreamStreamError) as raised:
        translator.finish()
    assert (raised.value.failure.status, raised.value.failure.retryable) == (500, True)
    with pytest.raises(UpstreamStreamError):
        translator.feed(b"")


@pytest.mark.parametrize(("original", "retryable"), [(500, True), (429, True), (400, False), (None, False)])
def test_model_stream_error_exception(original: int | None, retryable: bool) -> None:
    fields = {"originalStatusCode": original, "originalMessage": "upstream"} if original else {}
    _out, failure = _stream_failure([exception_frame("modelStreamErrorException", "model failed", **fields)])
    assert (failure.status, failure.error_type, failure.code) == (
        502,
        "server_error",
        "ModelStreamErrorException",
    )
    assert failure.retryable is retryable
    assert failure.breaker_counts


def test_validation_exception_frame_is_not_retryable() -> None:
    _out, failure = _stream_failure([exception_frame("validationException", "bad")])
    assert (failure.status, failure.retryable, failure.breaker_counts) == (400, False, False)


def test_error_frame() -> None:
    _out, failure = _stream_failure([fake.error_frame("ServiceUnavailableException", "try later")])
    assert (failure.status, failure.message, failure.retryable) == (503, "try later", True)


@pytest.mark.parametrize("keep", [0, 1, 3])
def test_eof_before_message_stop_is_a_cut(keep: int) -> None:
    frames = stream_frames(text_response("abcdef"))[:keep]
    _out, failure = _stream_failure(frames)
    assert (failure.status, failure.code, failure.retryable) == (502, "bad_upstream_stream", True)


def test_eof_inside_a_frame_is_a_cut_even_after_message_stop() -> None:
    frames = stream_frames(text_response("ab"))
    _out, failure = _stream_failure([*frames[:-1], frames[-1][:-3]])
    assert failure.code == "bad_upstream_stream"


def test_corrupted_crc_is_a_malformed_stream() -> None:
    frames = stream_frames(text_response("ab"))
    broken = bytearray(frames[1])
    broken[-1] ^= 0x01
    out, failure = _stream_failure([frames[0], bytes(broken)])
    assert len(out) == 1
    assert failure.status == 502 and "ChecksumMismatch" in failure.message


def test_corrupted_frame_in_the_same_read_returns_earlier_chunks_first() -> None:
    frames = stream_frames(text_response("ab"))
    broken = bytearray(frames[2])
    broken[20] ^= 0x01
    translator = ADAPTER.stream_translator(CLUSTER, chat(user("x"), stream=True))
    chunks = translator.feed(frames[0] + frames[1] + bytes(broken))
    assert [ChatCompletionChunk.model_validate_json(c).choices[0].delta.content for c in chunks] == ["", "ab"]
    for _ in range(2):
        with pytest.raises(UpstreamStreamError) as raised:
            translator.finish()
        assert raised.value.failure.message == "malformed Bedrock event stream: ChecksumMismatch"


def test_tool_delta_without_start_is_malformed() -> None:
    delta = event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{}"}}})
    _out, failure = _stream_failure([delta])
    assert failure.code == "bad_upstream_stream"


# --- error classification -----------------------------------------------------------------------


def classify(status: int, error_type: str | None, body: dict[str, Any], **headers: str) -> Failure:
    all_headers = dict(headers)
    if error_type is not None:
        all_headers["x-amzn-ErrorType"] = f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"
    return ADAPTER.classify_error(CLUSTER, status, all_headers, orjson.dumps(body))


@pytest.mark.parametrize(
    ("status", "name", "expected"),
    [
        (429, "ThrottlingException", (429, "rate_limit_error", "ThrottlingException", True, True)),
        (
            503,
            "ServiceUnavailableException",
            (503, "server_error", "ServiceUnavailableException", True, True),
        ),
        (429, "ModelNotReadyException", (503, "server_error", "ModelNotReadyException", True, True)),
        (500, "InternalServerException", (500, "server_error", "InternalServerException", True, True)),
        (408, "ModelTimeoutException", (504, "timeout", "ModelTimeoutException", False, True)),
        (400, "ValidationException", (400, "invalid_request_error", "ValidationException", False, False)),
        (
            400,
            "ServiceQuotaExceededException",
            (429, "insufficient_quota", "insufficient_quota", False, False),
        ),
        (403, "AccessDeniedException", (403, "permission_error", "AccessDeniedException", False, False)),
        (
            404,
            "ResourceNotFoundException",
            (404, "not_found_error", "ResourceNotFoundException", False, False),
        ),
        (424, "ModelErrorException", (502, "server_error", "ModelErrorException", False, True)),
        (
            403,
            "UnrecognizedClientException",
            (403, "permission_error", "UnrecognizedClientException", False, False),
        ),
        (502, "SomethingNewException", (502, "server_error", "SomethingNewException", True, True)),
        (418, "SomethingNewException", (418, "invalid_request_error", "SomethingNewException", False, False)),
        (503, None, (503, "server_error", None, True, True)),
    ],
)
def test_classify_error(status: int, name: str | None, expected: tuple[Any, ...]) -> None:
    failure = classify(status, name, {"message": "upstream says so"})
    assert (
        failure.status,
        failure.error_type,
        failure.code,
        failure.retryable,
        failure.breaker_counts,
    ) == expected
    assert failure.message == "upstream says so"
    assert failure.retry_after_s is None


def test_classify_error_reads_the_body_type_and_code() -> None:
    by_type = classify(
        400, None, {"__type": "com.amazon.coral.service#ThrottlingException", "Message": "slow"}
    )
    assert (by_type.status, by_type.code, by_type.message) == (429, "ThrottlingException", "slow")
    by_code = classify(503, None, {"code": "ModelNotReadyException"})
    assert (by_code.status, by_code.code, by_code.retryable) == (503, "ModelNotReadyException", True)
    assert by_code.message == "Bedrock returned ModelNotReadyException"


def test_classification_never_reads_message_text() -> None:
    failure = classify(400, "ValidationException", {"message": "Too many requests, throttling, try again"})
    assert (failure.status, failure.retryable) == (400, False)


@pytest.mark.parametrize(("original", "retryable"), [(500, True), (503, True), (429, True), (400, False)])
def test_model_error_exception_retryable_by_original_status(original: int, retryable: bool) -> None:
    failure = classify(424, "ModelErrorException", {"message": "m", "originalStatusCode": original})
    assert failure.retryable is retryable


def test_classify_error_retry_after_and_non_json_body() -> None:
    failure = ADAPTER.classify_error(CLUSTER, 503, {"Retry-After": "3"}, b"<html>busy</html>")
    assert (failure.status, failure.retryable, failure.retry_after_s) == (503, True, 3.0)
    assert failure.message == "Bedrock returned HTTP 503"


# --- against the fake over HTTP -----------------------------------------------------------------


@pytest.fixture
async def upstream(aiohttp_server: Any) -> tuple[BedrockUpstream, Cluster]:
    bedrock = BedrockUpstream()
    server = await aiohttp_server(bedrock.app)
    return bedrock, make_cluster(base_url=str(server.make_url("")).rstrip("/"))


async def _post(request: Any, url: yarl.URL | str | None = None) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session:
        target = url if url is not None else yarl.URL(request.url, encoded=True)
        async with session.post(target, data=request.body, headers=request.headers) as response:
            return response.status, dict(response.headers), await response.read()


async def test_fake_accepts_the_signed_request_and_sees_double_encoding(upstream: Any) -> None:
    bedrock, cluster = upstream
    bedrock.script(Answer(text_response("signed ok")))
    request = ADAPTER.build_request(cluster, AGENT, chat(user("Hi")), AUTH)
    status, _headers, raw = await _post(request)
    assert status == 200
    assert (
        orjson.loads(ADAPTER.parse_response(cluster, chat(user("Hi")), raw).body)["choices"][0]["message"][
            "content"
        ]
        == "signed ok"
    )
    received = bedrock.requests[0]
    assert received.raw_path == f"/model/{ENCODED_MODEL}/converse"
    assert received.model_id == MODEL
    assert received.canonical_request is not None
    assert (
        received.canonical_request.splitlines()[1]
        == "/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse"
    )
    assert received.validation_errors is None


async def test_fake_rejects_a_bad_signature_like_aws(upstream: Any) -> None:
    _bedrock, cluster = upstream
    wrong = AuthMaterial(aws=AwsCredentials(fake.TEST_ACCESS_KEY, Secret("not-the-secret")))
    status, headers, raw = await _post(ADAPTER.build_request(cluster, AGENT, chat(user("Hi")), wrong))
    assert status == 403
    assert headers["x-amzn-ErrorType"].startswith("InvalidSignatureException:")
    failure = ADAPTER.classify_error(cluster, status, headers, raw)
    assert (failure.status, failure.code, failure.retryable) == (403, "InvalidSignatureException", False)


async def test_fake_rejects_a_tampered_body(upstream: Any) -> None:
    bedrock, cluster = upstream
    request = ADAPTER.build_request(cluster, AGENT, chat(user("Hi")), AUTH)
    request = dataclasses.replace(request, body=request.body.replace(b"Hi", b"Yo"))
    status, headers, _raw = await _post(request)
    assert (status, bedrock.requests) == (403, [])
    assert headers["x-amzn-ErrorType"].startswith("InvalidSignatureException")


async def test_a_renormalised_url_breaks_the_signature(upstream: Any) -> None:
    """Why the I/O layer must send `yarl.URL(url, encoded=True)`: yarl turns %3A into ':'."""
    _bedrock, cluster = upstream
    request = ADAPTER.build_request(cluster, AGENT, chat(user("Hi")), AUTH)
    status, _headers, _raw = await _post(request, url=request.url)
    assert status == 403


async def test_fake_accepts_a_bedrock_api_key(upstream: Any) -> None:
    _bedrock, cluster = upstream
    auth = AuthMaterial(token=Secret(fake.TEST_BEARER_TOKEN))
    status, _headers, _raw = await _post(ADAPTER.build_request(cluster, AGENT, chat(user("Hi")), auth))
    assert status == 200
    bad = AuthMaterial(token=Secret("ABSK-wrong"))
    status, headers, _raw = await _post(ADAPTER.build_request(cluster, AGENT, chat(user("Hi")), bad))
    assert (status, headers["x-amzn-ErrorType"].split(":")[0]) == (403, "UnrecognizedClientException")


async def test_stream_over_http_with_awkward_chunking(upstream: Any) -> None:
    bedrock, cluster = upstream
    response = RESPONSES["parallel_tools"]
    bedrock.script(Stream(stream_frames(response, piece=2), chunk=5))
    body = chat(user("Hi"), stream=True, stream_options={"include_usage": True}, tools=[weather_tool()])
    request = ADAPTER.build_request(cluster, AGENT, body, AUTH)
    translator = ADAPTER.stream_translator(cluster, body)
    raw: list[bytes] = []
    async with (
        aiohttp.ClientSession() as session,
        session.post(yarl.URL(request.url, encoded=True), data=request.body, headers=request.headers) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/vnd.amazon.eventstream"
        async for data in resp.content.iter_any():
            raw.extend(translator.feed(data))
    raw.extend(translator.finish())
    chunks = [ChatCompletionChunk.model_validate_json(c) for c in raw]
    assert reassemble(chunks[:-1]) == plain(response)
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 15
    assert bedrock.requests[0].operation == "converse-stream"


async def test_cut_connection_mid_stream(upstream: Any) -> None:
    bedrock, cluster = upstream
    frames = stream_frames(text_response("abcdef"))
    bedrock.script(Cut(b"".join(frames[:2]) + frames[2][:5]))
    body = chat(user("Hi"), stream=True)
    request = ADAPTER.build_request(cluster, AGENT, body, AUTH)
    translator = ADAPTER.stream_translator(cluster, body)
    out: list[bytes] = []
    async with (
        aiohttp.ClientSession() as session,
        session.post(yarl.URL(request.url, encoded=True), data=request.body, headers=request.headers) as resp,
    ):
        with pytest.raises(aiohttp.ClientPayloadError):
            async for data in resp.content.iter_any():
                out.extend(translator.feed(data))
    with pytest.raises(UpstreamStreamError):
        translator.finish()
    assert len(out) == 2


async def test_error_status_from_the_fake_classifies(upstream: Any) -> None:
    bedrock, cluster = upstream
    bedrock.script(
        Error(429, "ThrottlingException", "Too many requests"),
        Error(400, "ServiceQuotaExceededException", in_body=True),
    )
    request = ADAPTER.build_request(cluster, AGENT, chat(user("Hi")), AUTH)
    first = ADAPTER.classify_error(cluster, *(await _post(request)))
    second = ADAPTER.classify_error(cluster, *(await _post(request)))
    assert (first.status, first.code, first.retryable, first.message) == (
        429,
        "ThrottlingException",
        True,
        "Too many requests",
    )
    assert (second.status, second.code, second.retryable) == (429, "insufficient_quota", False)


async def test_every_translated_body_passes_the_fakes_validation(upstream: Any) -> None:
    bedrock, cluster = upstream
    bodies = [
        chat(*HISTORY, tools=[weather_tool()], tool_choice="required", temperature=2, stop="x", max_tokens=9),
        chat(
            user(
                [
                    {"type": "text", "text": "see"},
                    {"type": "image_url", "image_url": {"url": f"data:image/webp;base64,{PNG}"}},
                ]
            )
        ),
        chat(
            {"role": "system", "content": "s"},
            user("x"),
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "n", "schema": {"type": "object"}},
            },
        ),
    ]
    agent = make_agent(prompt_cache=PromptCache(system_prompt=True, tools=True))
    for body in bodies:
        status, _headers, raw = await _post(ADAPTER.build_request(cluster, agent, body, AUTH))
        assert status == 200, raw
    assert [r.validation_errors for r in bedrock.requests] == [None, None, None]
