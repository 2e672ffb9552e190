"""The Bedrock adapter's plain answers: text and tool calls, stop reasons, token and cache usage,
and malformed upstream bodies."""

from __future__ import annotations

import orjson
import pytest
from openai.types.chat import ChatCompletion

from astra_sidecar.sidecar.errors import UpstreamMalformedError
from tests.fakes.bedrock_upstream import converse_response, stream_frames, text_response, tool_use, usage
from tests.sidecar.protocols.bedrock.helpers import ADAPTER, CLUSTER, MODEL, chat, parse, translate, user


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
