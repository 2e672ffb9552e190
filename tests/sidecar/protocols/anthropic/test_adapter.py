"""The Anthropic adapter, pure: request translation, response and stream translation, errors.

Every translated request must pass the fake upstream's copy of the API's own rules; every
translated response must parse as `openai.types.chat.ChatCompletion` and every chunk as
`ChatCompletionChunk`. Streams are produced by the fake's encoder and fed at awkward boundaries.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator, Iterable
from types import MappingProxyType
from typing import Any

import anthropic
import orjson
import pytest
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from compiler.table import (
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
from sidecar.errors import ClientError, UpstreamMalformedError, UpstreamStatusError, UpstreamStreamError
from sidecar.protocols.anthropic.adapter import JSON_TOOL_NAME, AnthropicAdapter, AnthropicStreamTranslator
from sidecar.protocols.base import AuthMaterial, Failure, Secret, Usage
from tests.fakes.anthropic_upstream import (
    ErrorReply,
    FakeAnthropic,
    Reply,
    StreamCut,
    StreamError,
    ToolUse,
    encode_events,
    error_event,
    message,
    message_events,
    sse_bytes,
    text_message,
    tool_message,
    usage,
    validate_request,
)

Json = dict[str, Any]

CLUSTER = Cluster(
    key="claude:claude-test:http://fake.invalid",
    provider="claude",
    wire="anthropic",
    model_id="claude-test",
    base_url="http://fake.invalid",
    auth="x-api-key",
    credentials=Credentials(mode="env", env="ANTHROPIC_API_KEY"),
    base_url_env=None,
    headers=MappingProxyType({}),
    breaker=BreakerPolicy(),
    rules=RequestRules(temperature_max=1.0, max_choices=1),
)
AGENT = Agent(
    id="helper",
    display_name=None,
    tier=None,
    plan=(CLUSTER.key,),
    max_context_tokens=None,
    max_output_tokens=None,
    temperature=None,
    system_prompt=None,
    tools=ToolPolicy(),
    retry=RetryPolicy(),
    timeouts=Timeouts(),
    request_timeout_ms=60000,
)
AUTH = AuthMaterial(token=Secret("sk-ant-test"))
ADAPTER = AnthropicAdapter()

WEATHER_TOOL: Json = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time"}}
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def user(content: Any) -> Json:
    return {"role": "user", "content": content}


def assistant(content: Any = None, tool_calls: list[Json] | None = None) -> Json:
    msg: Json = {"role": "assistant", "content": content}
    if tool_calls is not None:
        msg["tool_calls"] = tool_calls
    return msg


def call(id: str, name: str, arguments: str) -> Json:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


def tool_result(id: str, content: Any) -> Json:
    return {"role": "tool", "tool_call_id": id, "content": content}


def chat(*messages: Json, **extra: Any) -> Json:
    return {"model": "claude-test", "messages": list(messages), **extra}


def build(body: Json, *, agent: Agent = AGENT, cluster: Cluster = CLUSTER) -> Json:
    request = ADAPTER.build_request(cluster, agent, body, AUTH)
    payload: Json = orjson.loads(request.body)
    assert validate_request(request.headers, payload) is None
    return payload


def with_cache(system_prompt: bool = False, tools: bool = False) -> Agent:
    return dataclasses.replace(AGENT, prompt_cache=PromptCache(system_prompt=system_prompt, tools=tools))


def text(value: str) -> Json:
    return {"type": "text", "text": value}


# --- request: envelope --------------------------------------------------------------------------


def test_request_url_headers_and_envelope() -> None:
    request = ADAPTER.build_request(CLUSTER, AGENT, chat(user("Hi")), AUTH)
    assert request.url == "http://fake.invalid/v1/messages"
    assert request.method == "POST"
    assert request.stream is False
    assert dict(request.headers) == {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "x-api-key": "sk-ant-test",
    }
    assert orjson.loads(request.body) == {
        "model": "claude-test",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [text("Hi")]}],
    }


def test_cluster_headers_are_added_but_never_replace_the_key() -> None:
    cluster = dataclasses.replace(
        CLUSTER,
        base_url="http://fake.invalid/",
        headers=MappingProxyType(
            {"Anthropic-Beta": "b1", "X-Api-Key": "sneaky", "anthropic-version": "2024-01-01"}
        ),
    )
    request = ADAPTER.build_request(cluster, AGENT, chat(user("Hi")), AUTH)
    assert request.url == "http://fake.invalid/v1/messages"
    assert dict(request.headers) == {
        "content-type": "application/json",
        "anthropic-version": "2024-01-01",
        "anthropic-beta": "b1",
        "x-api-key": "sk-ant-test",
    }


def test_bearer_auth_style_and_no_auth() -> None:
    bearer = dataclasses.replace(CLUSTER, auth="bearer")
    headers = ADAPTER.build_request(bearer, AGENT, chat(user("Hi")), AUTH).headers
    assert headers["authorization"] == "Bearer sk-ant-test"
    assert "x-api-key" not in headers
    keyless = ADAPTER.build_request(CLUSTER, AGENT, chat(user("Hi")), AuthMaterial()).headers
    assert "x-api-key" not in keyless and "authorization" not in keyless


def test_stream_flag() -> None:
    request = ADAPTER.build_request(CLUSTER, AGENT, chat(user("Hi"), stream=True), AUTH)
    assert request.stream is True
    assert orjson.loads(request.body)["stream"] is True


@pytest.mark.parametrize(
    ("extra", "agent_cap", "expected"),
    [
        ({"max_completion_tokens": 100, "max_tokens": 50}, 999, 100),
        ({"max_tokens": 50}, 999, 50),
        ({}, 777, 777),
        ({}, None, 4096),
    ],
)
def test_max_tokens(extra: Json, agent_cap: int | None, expected: int) -> None:
    agent = dataclasses.replace(AGENT, max_output_tokens=agent_cap)
    assert build(chat(user("Hi"), **extra), agent=agent)["max_tokens"] == expected


@pytest.mark.parametrize(
    ("stop", "expected"),
    [("END", ["END"]), (["a", "b"], ["a", "b"]), (["", "x"], ["x"]), (None, None)],
)
def test_stop_sequences(stop: Any, expected: list[str] | None) -> None:
    body = build(chat(user("Hi"), stop=stop))
    assert body.get("stop_sequences") == expected
    assert "stop" not in body


def test_sampling_user_and_dropped_params() -> None:
    body = build(
        chat(
            user("Hi"),
            temperature=0.3,
            top_p=0.9,
            top_k=40,
            user="u-1",
            n=1,
            seed=7,
            frequency_penalty=0.5,
            presence_penalty=0.1,
            logprobs=True,
            top_logprobs=2,
            logit_bias={"1": 2},
            service_tier="auto",
            store=True,
            metadata={"k": "v"},
            stream_options={"include_usage": True},
            reasoning_effort="high",
            response_format={"type": "text"},
            parallel_tool_calls=False,
        )
    )
    assert body == {
        "model": "claude-test",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [text("Hi")]}],
        "temperature": 0.3,
        "top_k": 40,
        "metadata": {"user_id": "u-1"},
    }


def test_top_p_alone_is_kept_and_safety_identifier_wins_over_user() -> None:
    body = build(chat(user("Hi"), top_p=0.5, user="old", safety_identifier="new"))
    assert body["top_p"] == 0.5
    assert "temperature" not in body
    assert body["metadata"] == {"user_id": "new"}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools"),
        (
            {"tools": [WEATHER_TOOL], "tool_choice": {"type": "custom", "custom": {"name": "x"}}},
            "tool_choice",
        ),
    ],
)
def test_unsupported_parameters_are_400(extra: Json, param: str) -> None:
    with pytest.raises(ClientError) as info:
        build(chat(user("Hi"), **extra))
    assert info.value.failure.status == 400
    assert info.value.failure.param == param
    assert info.value.failure.retryable is False


# --- request: system, alternation, tools history -------------------------------------------------


def test_system_and_developer_messages_are_hoisted_in_order() -> None:
    body = build(
        chat(
            {"role": "system", "content": "Agent prompt."},
            {"role": "developer", "content": [text("Dev 1."), text("Dev 2.")]},
            user("Hi"),
            assistant("Hello"),
            {"role": "system", "content": "Late rule."},
            user("Again"),
        )
    )
    assert body["system"] == [text("Agent prompt."), text("Dev 1."), text("Dev 2."), text("Late rule.")]
    assert body["messages"] == [
        {"role": "user", "content": [text("Hi")]},
        {"role": "assistant", "content": [text("Hello")]},
        {"role": "user", "content": [text("Again")]},
    ]


def test_system_prompt_cache_mark_on_the_first_system_message() -> None:
    messages = (
        {"role": "system", "content": ""},
        {"role": "system", "content": [text("Agent A."), text("Agent B.")]},
        {"role": "system", "content": "Client rule."},
        user("Hi"),
    )
    body = build(chat(*messages), agent=with_cache(system_prompt=True))
    assert body["system"] == [
        text("Agent A."),
        {**text("Agent B."), "cache_control": {"type": "ephemeral"}},
        text("Client rule."),
    ]
    assert "cache_control" not in orjson.dumps(build(chat(*messages))).decode()


def test_tool_cache_mark_on_the_last_tool() -> None:
    body = build(chat(user("Hi"), tools=[WEATHER_TOOL, TIME_TOOL]), agent=with_cache(tools=True))
    assert "cache_control" not in body["tools"][0]
    assert body["tools"][1]["cache_control"] == {"type": "ephemeral"}
    both = build(
        chat({"role": "system", "content": "S"}, user("Hi"), tools=[WEATHER_TOOL]),
        agent=with_cache(system_prompt=True, tools=True),
    )
    assert both["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert both["tools"][0]["cache_control"] == {"type": "ephemeral"}


def test_consecutive_turns_merge_and_empty_ones_drop() -> None:
    body = build(
        chat(
            user("one"),
            user([text("two"), text("")]),
            assistant(""),
            assistant("a1"),
            assistant([{"type": "text", "text": "a2"}, {"type": "refusal", "refusal": "no"}]),
            user("three"),
        )
    )
    assert body["messages"] == [
        {"role": "user", "content": [text("one"), text("two")]},
        {"role": "assistant", "content": [text("a1"), text("a2"), text("no")]},
        {"role": "user", "content": [text("three")]},
    ]


def test_conversation_starting_with_assistant_or_empty_gets_a_placeholder_user_turn() -> None:
    body = build(chat({"role": "system", "content": "S"}, assistant("I start."), user("ok")))
    assert body["messages"][0] == {"role": "user", "content": [text(".")]}
    assert body["messages"][1] == {"role": "assistant", "content": [text("I start.")]}
    only_system = build(chat({"role": "system", "content": "S"}))
    assert only_system["messages"] == [{"role": "user", "content": [text(".")]}]


def test_final_assistant_prefill_loses_trailing_whitespace() -> None:
    body = build(chat(user("Answer in JSON"), assistant("{\n  ")))
    assert body["messages"][-1] == {"role": "assistant", "content": [text("{")]}
    blank = build(chat(user("Hi"), assistant("   ")))
    assert blank["messages"] == [{"role": "user", "content": [text("Hi")]}]


def test_tool_history_parallel_calls_and_grouped_results() -> None:
    body = build(
        chat(
            user("Weather and time in Paris?"),
            assistant(
                "Let me check.",
                [
                    call("toolu_01", "get_weather", '{"city": "Paris"}'),
                    call("call_02", "get_time", ""),
                ],
            ),
            tool_result("toolu_01", "18C"),
            tool_result("call_02", [text("12:00")]),
            user("Thanks, and tomorrow?"),
            tools=[WEATHER_TOOL, TIME_TOOL],
        )
    )
    assert body["messages"] == [
        {"role": "user", "content": [text("Weather and time in Paris?")]},
        {
            "role": "assistant",
            "content": [
                text("Let me check."),
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_02", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "call_02", "content": [text("12:00")]},
                text("Thanks, and tomorrow?"),
            ],
        },
    ]


def test_tool_results_go_before_text_in_a_merged_user_turn_and_empty_results_have_no_content() -> None:
    body = build(
        chat(
            user("q"),
            assistant(None, [call("toolu_1", "get_time", "{}")]),
            user("extra context"),
            tool_result("toolu_1", ""),
            tools=[TIME_TOOL],
        )
    )
    assert body["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}, text("extra context")],
    }


@pytest.mark.parametrize("arguments", ['{"city": "Par', "[1, 2]", '"text"'])
def test_invalid_tool_arguments_are_a_client_error(arguments: str) -> None:
    body = chat(
        user("q"), assistant(None, [call("toolu_1", "get_weather", arguments)]), tool_result("toolu_1", "x")
    )
    with pytest.raises(ClientError) as info:
        build(body)
    assert info.value.failure.status == 400
    assert info.value.failure.code == "invalid_tool_arguments"
    assert info.value.failure.param == "messages"


def test_tool_message_without_id_and_unknown_role_are_400() -> None:
    for bad in ({"role": "tool", "content": "x"}, {"role": "function", "name": "f", "content": "x"}):
        with pytest.raises(ClientError) as info:
            build(chat(user("q"), bad))
        assert info.value.failure.status == 400


# --- request: images ----------------------------------------------------------------------------


def test_images_data_and_http_urls() -> None:
    body = build(
        chat(
            user(
                [
                    text("What is in these?"),
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{PNG_B64}", "detail": "high"},
                    },
                    {"type": "image_url", "image_url": {"url": "data:image/jpg;base64,AAAA"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp"}},
                ]
            )
        )
    )
    assert body["messages"][0]["content"] == [
        text("What is in these?"),
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.webp"}},
    ]


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}},
        {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}},
        {"type": "image_url", "image_url": {}},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
        {"type": "file", "file": {"file_id": "file-1"}},
    ],
)
def test_unsupported_or_malformed_parts_are_400(part: Json) -> None:
    with pytest.raises(ClientError) as info:
        build(chat(user([part])))
    assert info.value.failure.status == 400
    assert info.value.failure.param == "messages"


def test_image_part_in_system_message_is_400() -> None:
    part = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    with pytest.raises(ClientError):
        build(chat({"role": "system", "content": [part]}, user("q")))


# --- request: tools and tool_choice ---------------------------------------------------------------


def test_tool_definitions() -> None:
    strict = {"type": "function", "function": {**WEATHER_TOOL["function"], "strict": True}}
    body = build(chat(user("q"), tools=[strict, TIME_TOOL]))
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
            "strict": True,
        },
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert body["tool_choice"] == {"type": "auto"}


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        (None, None, {"type": "auto"}),
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("none", False, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, True, {"type": "auto"}),
        ({"type": "function", "function": {"name": "get_time"}}, None, {"type": "tool", "name": "get_time"}),
        (
            {"type": "function", "function": {"name": "get_time"}},
            False,
            {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True},
        ),
    ],
)
def test_tool_choice(choice: Any, parallel: bool | None, expected: Json) -> None:
    extra: Json = {"tools": [WEATHER_TOOL, TIME_TOOL]}
    if choice is not None:
        extra["tool_choice"] = choice
    if parallel is not None:
        extra["parallel_tool_calls"] = parallel
    body = build(chat(user("q"), **extra))
    assert body["tool_choice"] == expected
    assert [t["name"] for t in body["tools"]] == ["get_weather", "get_time"]


@pytest.mark.parametrize(("mode", "expected"), [("auto", "auto"), ("required", "any")])
def test_allowed_tools_filters_the_list(mode: str, expected: str) -> None:
    choice = {
        "type": "allowed_tools",
        "allowed_tools": {"mode": mode, "tools": [{"type": "function", "function": {"name": "get_time"}}]},
    }
    body = build(chat(user("q"), tools=[WEATHER_TOOL, TIME_TOOL], tool_choice=choice))
    assert [t["name"] for t in body["tools"]] == ["get_time"]
    assert body["tool_choice"] == {"type": expected}


def test_tool_choice_without_tools_is_dropped() -> None:
    body = build(chat(user("q"), tool_choice="required", parallel_tool_calls=False))
    assert "tools" not in body and "tool_choice" not in body


# --- request: JSON mode -------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}},
    "required": ["name"],
    "additionalProperties": False,
}


def test_json_schema_uses_native_structured_output() -> None:
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": SCHEMA, "strict": True},
    }
    body = build(chat(user("Who?"), response_format=response_format))
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    assert "tools" not in body and "response_format" not in body


JSON_TOOL = {
    "name": JSON_TOOL_NAME,
    "description": "Give your complete answer to the user as one JSON object: the input of this tool.",
    "input_schema": {"type": "object"},
}


@pytest.mark.parametrize(
    ("extra", "tool_names", "choice"),
    [
        ({}, [JSON_TOOL_NAME], {"type": "tool", "name": JSON_TOOL_NAME}),
        (
            {"parallel_tool_calls": False},
            [JSON_TOOL_NAME],
            {"type": "tool", "name": JSON_TOOL_NAME, "disable_parallel_tool_use": True},
        ),
        ({"tools": [TIME_TOOL]}, ["get_time", JSON_TOOL_NAME], {"type": "any"}),
        ({"tools": [TIME_TOOL], "tool_choice": "auto"}, ["get_time", JSON_TOOL_NAME], {"type": "any"}),
        (
            {"tools": [TIME_TOOL], "tool_choice": "none"},
            ["get_time", JSON_TOOL_NAME],
            {"type": "tool", "name": JSON_TOOL_NAME},
        ),
        ({"tools": [TIME_TOOL], "tool_choice": "required"}, ["get_time"], {"type": "any"}),
        (
            {"tools": [TIME_TOOL], "tool_choice": {"type": "function", "function": {"name": "get_time"}}},
            ["get_time"],
            {"type": "tool", "name": "get_time"},
        ),
    ],
)
def test_json_object_is_emulated_with_a_forced_tool(extra: Json, tool_names: list[str], choice: Json) -> None:
    body = build(chat(user("JSON please"), response_format={"type": "json_object"}, **extra))
    assert [t["name"] for t in body["tools"]] == tool_names
    assert body["tool_choice"] == choice
    if JSON_TOOL_NAME in tool_names:
        assert body["tools"][-1] == JSON_TOOL
    assert "output_config" not in body


def test_schemaless_json_schema_is_emulated_too_and_name_clash_disables_it() -> None:
    body = build(chat(user("q"), response_format={"type": "json_schema", "json_schema": {"name": "any"}}))
    assert body["tool_choice"] == {"type": "tool", "name": JSON_TOOL_NAME}
    assert "output_config" not in body
    clash = {"type": "function", "function": {"name": JSON_TOOL_NAME}}
    plain = build(chat(user("q"), response_format={"type": "json_object"}, tools=[clash]))
    assert plain["tools"] == [{"name": JSON_TOOL_NAME, "input_schema": {"type": "object", "properties": {}}}]
    assert plain["tool_choice"] == {"type": "auto"}


def test_json_tool_gets_the_tool_cache_mark() -> None:
    body = build(chat(user("q"), response_format={"type": "json_object"}), agent=with_cache(tools=True))
    assert body["tools"] == [{**JSON_TOOL, "cache_control": {"type": "ephemeral"}}]


# --- response -----------------------------------------------------------------------------------


def parse(msg: Json, request: Json | None = None) -> tuple[ChatCompletion, Json]:
    completion = ADAPTER.parse_response(CLUSTER, request or chat(user("q")), orjson.dumps(msg))
    validated = ChatCompletion.model_validate_json(completion.body)
    raw: Json = orjson.loads(completion.body)
    assert completion.usage is not None
    assert raw["usage"]["prompt_tokens"] == completion.usage.prompt_tokens
    assert raw["usage"]["completion_tokens"] == completion.usage.completion_tokens
    return validated, raw


def test_text_response_with_cached_usage() -> None:
    msg = text_message("Hello!", usage_=usage(3, 12, cache_creation=100, cache_read=2000))
    completion, raw = parse(msg)
    assert raw["id"] == "chatcmpl-msg_01FakeMessage"
    assert raw["object"] == "chat.completion"
    assert raw["model"] == "claude-test"
    assert raw["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello!", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert raw["usage"] == {
        "prompt_tokens": 2103,
        "completion_tokens": 12,
        "total_tokens": 2115,
        "prompt_tokens_details": {"cached_tokens": 2000},
    }
    assert completion.usage is not None and completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 2000


def test_parallel_tool_use_response() -> None:
    msg = tool_message(
        ToolUse("toolu_01", "get_weather", {"city": "Paris", "units": ["C"]}),
        ToolUse("toolu_02", "get_time", {}),
        text="Checking.",
    )
    completion, raw = parse(msg)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking."
    calls = raw["choices"][0]["message"]["tool_calls"]
    assert [(c["id"], c["type"], c["function"]["name"]) for c in calls] == [
        ("toolu_01", "function", "get_weather"),
        ("toolu_02", "function", "get_time"),
    ]
    assert isinstance(calls[0]["function"]["arguments"], str)
    assert orjson.loads(calls[0]["function"]["arguments"]) == {"city": "Paris", "units": ["C"]}
    assert calls[1]["function"]["arguments"] == "{}"


def test_tool_only_response_has_null_content() -> None:
    completion, _ = parse(tool_message(ToolUse("toolu_01", "get_time", {"tz": "UTC"})))
    assert completion.choices[0].message.content is None
    assert completion.choices[0].message.tool_calls is not None
    assert len(completion.choices[0].message.tool_calls) == 1


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("refusal", "content_filter"),
        ("something_new", "stop"),
    ],
)
def test_stop_reasons(stop_reason: str, finish: str) -> None:
    completion, _ = parse(
        text_message(
            "x", stop_reason=stop_reason, stop_sequence="END" if stop_reason == "stop_sequence" else None
        )
    )
    assert completion.choices[0].finish_reason == finish


def test_thinking_blocks_are_dropped_and_text_blocks_concatenated() -> None:
    msg = message(
        [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "redacted_thinking", "data": "xyz"},
            text("Part one. "),
            text("Part two."),
        ]
    )
    completion, raw = parse(msg)
    assert completion.choices[0].message.content == "Part one. Part two."
    assert "tool_calls" not in raw["choices"][0]["message"]


def test_json_emulation_response_becomes_content() -> None:
    request = chat(user("JSON please"), response_format={"type": "json_object"})
    msg = tool_message(ToolUse("toolu_9", JSON_TOOL_NAME, {"name": "Ada", "n": [1, 2]}))
    completion, raw = parse(msg, request)
    assert completion.choices[0].finish_reason == "stop"
    assert "tool_calls" not in raw["choices"][0]["message"]
    assert orjson.loads(completion.choices[0].message.content or "") == {"name": "Ada", "n": [1, 2]}


def test_json_emulation_with_a_client_tool_call_keeps_the_call() -> None:
    request = chat(user("q"), response_format={"type": "json_object"}, tools=[TIME_TOOL])
    msg = tool_message(ToolUse("toolu_1", "get_time", {}), ToolUse("toolu_2", JSON_TOOL_NAME, {"a": 1}))
    completion, _ = parse(msg, request)
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.choices[0].message.content == '{"a":1}'
    assert [c.id for c in completion.choices[0].message.tool_calls or []] == ["toolu_1"]


def test_same_tool_name_without_json_mode_is_an_ordinary_call() -> None:
    msg = tool_message(ToolUse("toolu_2", JSON_TOOL_NAME, {"a": 1}))
    completion, _ = parse(msg)
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.choices[0].message.content is None


@pytest.mark.parametrize("raw", [b"<html>oops</html>", b"[1]", b'{"type": "message"}'])
def test_malformed_answer(raw: bytes) -> None:
    with pytest.raises(UpstreamMalformedError) as info:
        ADAPTER.parse_response(CLUSTER, chat(user("q")), raw)
    assert info.value.failure.status == 502
    assert info.value.failure.code == "upstream_malformed"
    assert info.value.cluster == CLUSTER.key


def test_error_object_with_status_200_is_classified() -> None:
    raw = orjson.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    with pytest.raises(UpstreamStatusError) as info:
        ADAPTER.parse_response(CLUSTER, chat(user("q")), raw)
    assert info.value.failure.status == 503
    assert info.value.failure.retryable is True


# --- stream -------------------------------------------------------------------------------------


def translate(pieces: Iterable[bytes], request: Json) -> tuple[list[Json], AnthropicStreamTranslator]:
    translator = ADAPTER.stream_translator(CLUSTER, request)
    out: list[bytes] = []
    for piece in pieces:
        out += translator.feed(piece)
    out += translator.finish()
    for chunk in out:
        ChatCompletionChunk.model_validate_json(chunk)
    return [orjson.loads(chunk) for chunk in out], translator


def reassemble(chunks: list[Json]) -> Json:
    """What an OpenAI client rebuilds from the chunks."""
    content: list[str] = []
    calls: dict[int, Json] = {}
    finish = None
    roles = []
    for chunk in chunks:
        for choice in chunk["choices"]:
            delta = choice["delta"]
            if "role" in delta:
                roles.append(delta["role"])
            content.append(delta.get("content") or "")
            for fragment in delta.get("tool_calls") or ():
                slot = calls.setdefault(fragment["index"], {"id": None, "name": "", "arguments": ""})
                slot["id"] = fragment.get("id") or slot["id"]
                function = fragment.get("function") or {}
                slot["name"] += function.get("name") or ""
                slot["arguments"] += function.get("arguments") or ""
            finish = choice["finish_reason"] or finish
    return {
        "roles": roles,
        "content": "".join(content),
        "calls": [calls[i] for i in sorted(calls)],
        "finish": finish,
    }


def non_streamed(msg: Json, request: Json) -> Json:
    _, raw = parse(msg, request)
    choice = raw["choices"][0]
    calls = [
        {"id": c["id"], "name": c["function"]["name"], "arguments": orjson.loads(c["function"]["arguments"])}
        for c in choice["message"].get("tool_calls") or ()
    ]
    return {"content": choice["message"]["content"] or "", "calls": calls, "finish": choice["finish_reason"]}


def streamed(chunks: list[Json]) -> Json:
    whole = reassemble(chunks)
    calls = [
        {"id": c["id"], "name": c["name"], "arguments": orjson.loads(c["arguments"])} for c in whole["calls"]
    ]
    return {"content": whole["content"], "calls": calls, "finish": whole["finish"]}


def without_created(chunks: list[Json]) -> list[Json]:
    return [{k: v for k, v in chunk.items() if k != "created"} for chunk in chunks]


STREAM_REQUEST = chat(user("q"), stream=True)
USAGE_REQUEST = chat(user("q"), stream=True, stream_options={"include_usage": True})
PARALLEL = tool_message(
    ToolUse("toolu_01", "get_weather", {"city": "Paris", "when": {"day": "today", "hours": [9, 12, 18]}}),
    ToolUse("toolu_02", "get_time", {}),
    ToolUse("toolu_03", "get_weather", {"city": 'Zürich "quoted" \\ ünïcode'}),
    text="Let me look that up.",
    usage_=usage(5, 40, cache_creation=7, cache_read=300),
)


def test_text_stream_shape_without_usage() -> None:
    msg = text_message("Hello there, streaming world!")
    chunks, translator = translate([sse_bytes(msg)], STREAM_REQUEST)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(
        c["id"] == "chatcmpl-msg_01FakeMessage" and c["object"] == "chat.completion.chunk" for c in chunks
    )
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    whole = reassemble(chunks)
    assert whole["roles"] == ["assistant"]
    assert whole["content"] == "Hello there, streaming world!"
    assert len(chunks) == 1 + 8 + 1  # role, 8 text fragments of 4 chars, finish
    assert translator.usage is not None and translator.usage.completion_tokens == 5


def test_stream_usage_chunk_only_with_include_usage() -> None:
    chunks, translator = translate([sse_bytes(PARALLEL)], USAGE_REQUEST)
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 312,
        "completion_tokens": 40,
        "total_tokens": 352,
        "prompt_tokens_details": {"cached_tokens": 300},
    }
    assert translator.usage is not None and translator.usage.cached_tokens == 300


def test_streamed_parallel_tool_calls_match_the_plain_answer() -> None:
    chunks, _ = translate([sse_bytes(PARALLEL, json_chunk=5)], STREAM_REQUEST)
    assert streamed(chunks) == non_streamed(PARALLEL, STREAM_REQUEST)
    headers = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if "id" in (c["choices"][0]["delta"].get("tool_calls") or [{}])[0]
    ]
    assert headers == [
        {
            "index": 0,
            "id": "toolu_01",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
        {"index": 1, "id": "toolu_02", "type": "function", "function": {"name": "get_time", "arguments": ""}},
        {
            "index": 2,
            "id": "toolu_03",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
    ]


def test_fragmented_arguments_are_forwarded_unparsed_with_the_right_index() -> None:
    msg = tool_message(ToolUse("toolu_01", "get_weather", {"city": "Paris"}), text="Hi")
    chunks, _ = translate([sse_bytes(msg, json_chunk=1)], STREAM_REQUEST)
    fragments = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"][0]["delta"].get("tool_calls")
        and "id" not in c["choices"][0]["delta"]["tool_calls"][0]
    ]
    assert all(f == {"index": 0, "function": {"arguments": f["function"]["arguments"]}} for f in fragments)
    assert [f["function"]["arguments"] for f in fragments] == list('{"city": "Paris"}')


def test_single_tool_call_stream_and_no_argument_tool_gets_empty_object() -> None:
    msg = tool_message(ToolUse("toolu_07", "get_time", {}))
    chunks, _ = translate([sse_bytes(msg)], STREAM_REQUEST)
    whole = reassemble(chunks)
    assert whole["calls"] == [{"id": "toolu_07", "name": "get_time", "arguments": "{}"}]
    assert whole["content"] == ""
    assert whole["finish"] == "tool_calls"
    assert streamed(chunks) == non_streamed(msg, STREAM_REQUEST)


def test_streamed_json_emulation_becomes_content() -> None:
    request = chat(user("JSON"), stream=True, response_format={"type": "json_object"})
    msg = tool_message(ToolUse("toolu_9", JSON_TOOL_NAME, {"name": "Ada", "tags": ["x", "y"]}))
    chunks, _ = translate([sse_bytes(msg, json_chunk=3)], request)
    whole = reassemble(chunks)
    assert whole["calls"] == []
    assert whole["finish"] == "stop"
    assert orjson.loads(whole["content"]) == {"name": "Ada", "tags": ["x", "y"]}
    assert orjson.loads(non_streamed(msg, request)["content"]) == orjson.loads(whole["content"])


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [("max_tokens", "length"), ("stop_sequence", "stop"), ("refusal", "content_filter")],
)
def test_stream_finish_reasons(stop_reason: str, finish: str) -> None:
    chunks, _ = translate([sse_bytes(text_message("cut short", stop_reason=stop_reason))], STREAM_REQUEST)
    assert reassemble(chunks)["finish"] == finish


def test_thinking_pings_and_unknown_events_are_ignored() -> None:
    msg = message([{"type": "thinking", "thinking": "let me think", "signature": "s1"}, text("Answer.")])
    events = message_events(msg, ping_every=1)
    events.insert(3, {"type": "brand_new_event", "payload": 1})
    chunks, _ = translate([encode_events(events)], STREAM_REQUEST)
    assert reassemble(chunks)["content"] == "Answer."
    assert all(set(c["choices"][0]["delta"]) <= {"role", "content"} for c in chunks)


def test_cumulative_usage_from_message_delta_wins() -> None:
    events = message_events(text_message("hi", usage_=usage(10, 3, cache_read=4)))
    events[-2]["usage"] = {"output_tokens": 9, "input_tokens": 11, "cache_read_input_tokens": 6}
    chunks, translator = translate([encode_events(events)], USAGE_REQUEST)
    assert chunks[-1]["usage"]["prompt_tokens"] == 17
    assert chunks[-1]["usage"]["completion_tokens"] == 9
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 6}
    assert translator.usage == Usage(prompt_tokens=17, completion_tokens=9, cached_tokens=6)


def test_one_byte_at_a_time_and_crlf_give_the_same_chunks() -> None:
    data = sse_bytes(PARALLEL, json_chunk=4)
    reference, _ = translate([data], USAGE_REQUEST)
    one_by_one, _ = translate([data[i : i + 1] for i in range(len(data))], USAGE_REQUEST)
    crlf = encode_events(message_events(PARALLEL, json_chunk=4), newline="\r\n")
    crlf_bytes, _ = translate([crlf[i : i + 1] for i in range(len(crlf))], USAGE_REQUEST)
    assert without_created(one_by_one) == without_created(reference)
    assert without_created(crlf_bytes) == without_created(reference)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=40))
def test_any_split_gives_the_same_chunks(sizes: list[int]) -> None:
    data = sse_bytes(PARALLEL, json_chunk=3)
    pieces, at, i = [], 0, 0
    while at < len(data):
        pieces.append(data[at : at + sizes[i % len(sizes)]])
        at += sizes[i % len(sizes)]
        i += 1
    reference, _ = translate([data], USAGE_REQUEST)
    split, _ = translate(pieces, USAGE_REQUEST)
    assert without_created(split) == without_created(reference)


def test_stream_without_trailing_blank_line_still_completes() -> None:
    data = sse_bytes(text_message("ok")).rstrip(b"\n")
    chunks, _ = translate([data], STREAM_REQUEST)
    assert reassemble(chunks)["finish"] == "stop"


def test_mid_stream_error_event_raises_mapped_failure() -> None:
    events = message_events(text_message("partial answer here"))[:5]
    data = encode_events([*events, error_event("overloaded_error", "Overloaded")])
    translator = ADAPTER.stream_translator(CLUSTER, STREAM_REQUEST)
    before = translator.feed(encode_events(events))
    assert reassemble([orjson.loads(c) for c in before])["content"] == "partial "
    with pytest.raises(UpstreamStreamError) as info:
        translator.feed(data[len(encode_events(events)) :])
    failure = info.value.failure
    assert (failure.status, failure.error_type, failure.code) == (503, "server_error", "overloaded_error")
    assert failure.message == "Overloaded"
    assert failure.retryable is True and failure.breaker_counts is True
    assert info.value.cluster == CLUSTER.key


@pytest.mark.parametrize(
    ("error_type", "status", "retryable"),
    [("api_error", 500, True), ("rate_limit_error", 429, True), ("invalid_request_error", 400, False)],
)
def test_error_event_before_message_start(error_type: str, status: int, retryable: bool) -> None:
    translator = ADAPTER.stream_translator(CLUSTER, STREAM_REQUEST)
    with pytest.raises(UpstreamStreamError) as info:
        translator.feed(encode_events([error_event(error_type, "boom")]))
    assert (info.value.failure.status, info.value.failure.retryable) == (status, retryable)


@pytest.mark.parametrize("keep", [0, 1, 6, -2, -1])
def test_cut_stream_raises_at_finish(keep: int) -> None:
    events = message_events(text_message("never finished"))
    data = encode_events(events[:keep]) if keep else b""
    translator = ADAPTER.stream_translator(CLUSTER, STREAM_REQUEST)
    translator.feed(data)
    with pytest.raises(UpstreamStreamError) as info:
        translator.finish()
    assert info.value.failure.status == 502
    assert info.value.failure.code == "upstream_stream_cut"


def test_cut_in_the_middle_of_the_message_stop_event() -> None:
    data = sse_bytes(text_message("almost"))
    translator = ADAPTER.stream_translator(CLUSTER, STREAM_REQUEST)
    out = translator.feed(data[: len(data) - 10])
    assert all(orjson.loads(c)["choices"][0]["finish_reason"] is None for c in out)
    with pytest.raises(UpstreamStreamError):
        translator.finish()


def test_malformed_event_data_raises() -> None:
    translator = ADAPTER.stream_translator(CLUSTER, STREAM_REQUEST)
    with pytest.raises(UpstreamStreamError) as info:
        translator.feed(b"event: message_start\ndata: {not json\n\n")
    assert info.value.failure.code == "upstream_malformed"


def test_events_after_message_stop_are_ignored() -> None:
    data = sse_bytes(text_message("done")) + encode_events([error_event()])
    chunks, _ = translate([data], STREAM_REQUEST)
    assert reassemble(chunks)["finish"] == "stop"


# --- errors -------------------------------------------------------------------------------------


def classify(
    status: int, error_type: str | None, message: str = "msg", headers: dict[str, str] | None = None
) -> Failure:
    raw = (
        orjson.dumps({"type": "error", "error": {"type": error_type, "message": message}})
        if error_type
        else b"<html>bad gateway</html>"
    )
    return ADAPTER.classify_error(CLUSTER, status, headers or {}, raw)


@pytest.mark.parametrize(
    ("status", "error_type", "out_status", "out_type", "code", "retryable", "breaker"),
    [
        (400, "invalid_request_error", 400, "invalid_request_error", "invalid_request_error", False, False),
        (401, "authentication_error", 401, "authentication_error", "authentication_error", False, False),
        (402, "billing_error", 429, "insufficient_quota", "insufficient_quota", False, False),
        (403, "permission_error", 403, "permission_error", "permission_error", False, False),
        (404, "not_found_error", 404, "not_found_error", "not_found_error", False, False),
        (413, "request_too_large", 413, "invalid_request_error", "request_too_large", False, False),
        (429, "rate_limit_error", 429, "rate_limit_error", "rate_limit_error", True, True),
        (500, "api_error", 500, "server_error", "api_error", True, True),
        (502, None, 502, "server_error", "upstream_http_502", True, True),
        (503, None, 503, "server_error", "upstream_http_503", True, True),
        (504, "timeout_error", 504, "timeout", "timeout_error", True, True),
        (529, "overloaded_error", 503, "server_error", "overloaded_error", True, True),
    ],
)
def test_error_classification(
    status: int,
    error_type: str | None,
    out_status: int,
    out_type: str,
    code: str,
    retryable: bool,
    breaker: bool,
) -> None:
    failure = classify(status, error_type, "upstream says no")
    assert failure.status == out_status
    assert failure.error_type == out_type
    assert failure.code == code
    assert failure.retryable is retryable
    assert failure.breaker_counts is breaker
    assert failure.message == (
        "upstream says no" if error_type else f"provider claude answered HTTP {status}"
    )


def test_classification_ignores_message_text() -> None:
    misleading = classify(400, "invalid_request_error", "Overloaded, please retry (rate limit 529)")
    assert (misleading.status, misleading.retryable, misleading.breaker_counts) == (400, False, False)
    reworded = classify(529, "overloaded_error", "Something else entirely")
    assert (reworded.status, reworded.retryable) == (503, True)


def test_structured_type_refines_the_status() -> None:
    overloaded = classify(500, "overloaded_error")
    assert (overloaded.status, overloaded.code, overloaded.retryable) == (503, "overloaded_error", True)
    billing = classify(400, "billing_error")
    assert (billing.status, billing.error_type, billing.retryable, billing.breaker_counts) == (
        429,
        "insufficient_quota",
        False,
        False,
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"Retry-After": "2.5"}, 2.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"Retry-After-Ms": "250"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert classify(429, "rate_limit_error", headers=headers).retry_after_s == expected


# --- the fake itself speaks what the official anthropic SDK understands ---------------------------


@pytest.fixture
async def fake_server() -> AsyncIterator[tuple[FakeAnthropic, str]]:
    fake = FakeAnthropic()
    server = TestServer(fake.app())
    await server.start_server()
    try:
        yield fake, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_fake_answers_the_official_anthropic_sdk(fake_server: tuple[FakeAnthropic, str]) -> None:
    fake, url = fake_server
    client = anthropic.AsyncAnthropic(base_url=url, api_key="sk-ant-test", max_retries=0)
    fake.push(
        Reply(PARALLEL), Reply(PARALLEL, write_size=7), ErrorReply(529, "overloaded_error", "Overloaded")
    )
    plain = await client.messages.create(
        model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "q"}]
    )
    assert plain.model_dump(exclude_none=True) == anthropic.types.Message.model_validate(PARALLEL).model_dump(
        exclude_none=True
    )
    async with client.messages.stream(
        model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "q"}]
    ) as stream:
        final = await stream.get_final_message()
    assert [b.model_dump(exclude_none=True) for b in final.content] == [
        b.model_dump(exclude_none=True) for b in plain.content
    ]
    assert final.usage.cache_read_input_tokens == 300 and final.usage.output_tokens == 40
    with pytest.raises(anthropic.APIStatusError) as info:
        await client.messages.create(
            model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "q"}]
        )
    assert info.value.status_code == 529
    assert info.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
        "request_id": "req_fake",
    }
    assert len(fake.requests) == 3
    await client.close()


async def test_fake_rejects_what_the_api_rejects_and_injects_stream_faults(
    fake_server: tuple[FakeAnthropic, str],
) -> None:
    fake, url = fake_server
    client = anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.BadRequestError):
        await client.messages.create(
            model="m",
            max_tokens=8,
            messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
        )
    fake.push(StreamError(text_message("abcdefgh"), after_events=4))
    with pytest.raises(anthropic.APIStatusError) as info:
        async with client.messages.stream(
            model="m", max_tokens=8, messages=[{"role": "user", "content": "a"}]
        ) as stream:
            await stream.get_final_message()
    assert info.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    fake.push(StreamCut(text_message("abcdefgh"), after_events=4))
    with pytest.raises(Exception, match="incomplete chunked read"):
        async with client.messages.stream(
            model="m", max_tokens=8, messages=[{"role": "user", "content": "a"}]
        ) as stream:
            await stream.get_final_message()
    await client.close()


def test_translated_requests_pass_the_fakes_api_rules() -> None:
    bad = {"model": "m", "max_tokens": 8, "messages": [{"role": "assistant", "content": "x"}]}
    assert validate_request({"x-api-key": "k", "anthropic-version": "2023-06-01"}, bad) is not None
    dangling = {
        "model": "m",
        "max_tokens": 8,
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": "no result"},
        ],
    }
    assert validate_request({"x-api-key": "k", "anthropic-version": "2023-06-01"}, dangling) is not None
    assert validate_request({"anthropic-version": "2023-06-01"}, {}) == (
        401,
        "authentication_error",
        "x-api-key header is required",
    )


def test_random_conversations_translate_to_valid_requests() -> None:
    rng = random.Random(4)
    for _ in range(200):
        messages: list[Json] = []
        pending: list[str] = []
        for n in range(rng.randint(1, 8)):
            kind = rng.choice(["system", "user", "assistant", "tools"])
            if pending:
                messages += [tool_result(i, rng.choice(["ok", ""])) for i in pending]
                pending = []
            elif kind == "system":
                messages.append({"role": rng.choice(["system", "developer"]), "content": f"s{n}"})
            elif kind == "user":
                messages.append(user(rng.choice([f"u{n}", "", [text(f"u{n}")]])))
            elif kind == "assistant":
                messages.append(assistant(rng.choice([f"a{n}", "", None, " "])))
            else:
                pending = [f"toolu_{n}_{k}" for k in range(rng.randint(1, 3))]
                messages.append(
                    assistant(rng.choice([None, "calling"]), [call(i, "get_time", "{}") for i in pending])
                )
        messages += [tool_result(i, "late") for i in pending]
        build(chat(*messages, tools=[TIME_TOOL]))
