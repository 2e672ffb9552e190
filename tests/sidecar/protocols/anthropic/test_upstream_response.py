"""The Anthropic adapter's whole answers: every translated response must parse as
`openai.types.chat.ChatCompletion` (`astra_sidecar.sidecar.protocols.anthropic.upstream_response`).
"""

from __future__ import annotations

import orjson
import pytest

from astra_sidecar.sidecar.errors import UpstreamMalformedError, UpstreamStatusError
from astra_sidecar.sidecar.protocols.anthropic.upstream_tools import JSON_TOOL_NAME
from tests.fakes.anthropic_upstream import (
    ToolUse,
    message,
    text_message,
    tool_message,
    usage,
)
from tests.sidecar.protocols.anthropic.helpers import (
    ADAPTER,
    CLUSTER,
    TIME_TOOL,
    chat,
    parse,
    text,
    user,
)

# --- response -----------------------------------------------------------------------------------


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
