"""The Gemini adapter's answers, plain and streamed, pure.

Every translated answer is validated with the official `openai` types; streamed tool calls are
reassembled and compared with the plain answer of the same upstream response.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from astra_sidecar.sidecar.errors import UpstreamMalformedError, UpstreamStatusError, UpstreamStreamError
from astra_sidecar.sidecar.protocols.base import Failure
from astra_sidecar.sidecar.protocols.gemini.ids import call_nonce
from tests.fakes.gemini_upstream import (
    blocked_prompt_response,
    candidate,
    encode_events,
    function_call_response,
    google_error,
    response,
    safety_response,
    text_response,
    text_stream,
    usage_metadata,
)
from tests.sidecar.protocols.gemini.helpers import (
    ADAPTER,
    AI_STUDIO,
    MODEL,
    Json,
    chat,
    plain,
    plain_calls,
    reassemble,
    user,
)

PLAIN_ID = re.compile(r"^call_[0-9a-f]{24}$")


def stream_chunks(
    events: Sequence[Any], pieces: Sequence[int] | None = None, request: Json | None = None
) -> tuple[list[ChatCompletionChunk], Any]:
    """Feed the encoded events split at `pieces` (byte offsets); every chunk is validated."""
    translator = ADAPTER.stream_translator(AI_STUDIO, request or chat([user("hi")], stream=True))
    data = encode_events(events)
    cuts = [0, *(pieces or ()), len(data)]
    payloads: list[bytes] = []
    for start, end in itertools.pairwise(cuts):
        payloads += translator.feed(data[start:end])
    payloads += translator.finish()
    return [ChatCompletionChunk.model_validate_json(p) for p in payloads], translator


# --- plain answers ------------------------------------------------------------------------------


def test_plain_text_answer() -> None:
    data = response(
        [candidate([{"text": "Hel"}, {"text": "lo", "thoughtSignature": "s"}])], usage=usage_metadata(10, 4)
    )
    completion = ADAPTER.parse_response(AI_STUDIO, chat([user("hi")]), orjson.dumps(data))
    parsed = ChatCompletion.model_validate_json(completion.body)
    assert parsed.id == "chatcmpl-resp-1"
    assert parsed.model == MODEL
    assert parsed.choices[0].message.content == "Hello"
    assert parsed.choices[0].message.tool_calls is None
    assert parsed.choices[0].finish_reason == "stop"
    assert orjson.loads(completion.body)["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 4,
        "total_tokens": 14,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (10, 4)


def test_thought_parts_are_hidden() -> None:
    data = response([candidate([{"text": "pondering", "thought": True}, {"text": "42"}])])
    assert plain(data).choices[0].message.content == "42"


def test_single_tool_call_sets_tool_calls_finish() -> None:
    parsed = plain(function_call_response([("get_weather", {"city": "Paris", "days": 2})]))
    choice = parsed.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert plain_calls(parsed) == [
        {
            "id": "call_" + call_nonce("resp-1", 0, 0),
            "name": "get_weather",
            "arguments": '{"city":"Paris","days":2}',
        }
    ]
    assert PLAIN_ID.match(plain_calls(parsed)[0]["id"])


def test_parallel_tool_calls_with_text() -> None:
    parsed = plain(function_call_response([("a", {"x": 1}), ("b", {})], text="Let me check."))
    assert parsed.choices[0].message.content == "Let me check."
    calls = plain_calls(parsed)
    assert [(c["name"], c["arguments"]) for c in calls] == [("a", '{"x":1}'), ("b", "{}")]
    assert len({c["id"] for c in calls}) == 2
    assert parsed.choices[0].finish_reason == "tool_calls"


def test_ids_are_random_without_response_id() -> None:
    data = function_call_response([("a", {})])
    del data["responseId"]
    first, second = plain_calls(plain(data))[0]["id"], plain_calls(plain(data))[0]["id"]
    assert PLAIN_ID.match(first) and first != second


def test_usage_with_cached_thoughts_and_tool_use_tokens() -> None:
    data = text_response("ok", usage=usage_metadata(1000, 50, cached=800, thoughts=120, tool_use=30))
    completion = ADAPTER.parse_response(AI_STUDIO, chat([user("hi")]), orjson.dumps(data))
    ChatCompletion.model_validate_json(completion.body)
    assert orjson.loads(completion.body)["usage"] == {
        "prompt_tokens": 1030,
        "completion_tokens": 170,
        "total_tokens": 1200,
        "prompt_tokens_details": {"cached_tokens": 800},
        "completion_tokens_details": {"reasoning_tokens": 120},
    }
    assert completion.usage is not None
    assert completion.usage.cached_tokens == 800


@pytest.mark.parametrize(
    ("finish", "expected"),
    [
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("OTHER", "stop"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
    ],
)
def test_finish_reasons(finish: str, expected: str) -> None:
    assert plain(text_response("x", finish=finish)).choices[0].finish_reason == expected


def test_safety_finish_without_content() -> None:
    parsed = plain(safety_response(usage=usage_metadata(5, 0)))
    assert parsed.choices[0].finish_reason == "content_filter"
    assert parsed.choices[0].message.content == ""


def test_blocked_prompt_is_content_filter_with_empty_content() -> None:
    parsed = plain(blocked_prompt_response("PROHIBITED_CONTENT", usage=usage_metadata(5, 0)))
    assert len(parsed.choices) == 1
    assert parsed.choices[0].finish_reason == "content_filter"
    assert parsed.choices[0].message.content == ""
    assert parsed.usage is not None and parsed.usage.prompt_tokens == 5


def test_multiple_candidates_become_choices() -> None:
    data = response([candidate([{"text": "B"}], index=1), candidate([{"text": "A"}], "MAX_TOKENS", index=0)])
    parsed = plain(data, chat([user("hi")], n=2))
    assert [(c.index, c.message.content, c.finish_reason) for c in parsed.choices] == [
        (0, "A", "length"),
        (1, "B", "stop"),
    ]


def test_malformed_answer_is_a_malformed_failure() -> None:
    with pytest.raises(UpstreamMalformedError) as caught:
        ADAPTER.parse_response(AI_STUDIO, chat([user("hi")]), b"<html>")
    assert caught.value.failure.retryable is True
    assert caught.value.cluster == AI_STUDIO.key


def test_error_body_with_200_is_a_status_error() -> None:
    raw = orjson.dumps(google_error(503, "UNAVAILABLE", "overloaded", wrapped=True))
    with pytest.raises(UpstreamStatusError) as caught:
        ADAPTER.parse_response(AI_STUDIO, chat([user("hi")]), raw)
    assert caught.value.failure.status == 503
    assert caught.value.failure.retryable is True


# --- streams ----------------------------------------------------------------------------------


def test_text_stream_without_usage_option() -> None:
    events = text_stream(["Hel", "lo ", "wörld 🌍"], usage=usage_metadata(4, 3))
    chunks, translator = stream_chunks(events)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert reassemble(chunks) == {"content": "Hello wörld 🌍", "tool_calls": [], "finish_reason": "stop"}
    assert all(c.usage is None for c in chunks)
    assert all("usage" not in orjson.loads(c.model_dump_json(exclude_unset=True)) for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].choices[0].delta.content is None
    assert len({c.id for c in chunks}) == 1
    assert translator.usage is not None and translator.usage.completion_tokens == 3


def test_stream_usage_chunk_last_and_latest_usage_wins() -> None:
    events = [
        response([candidate([{"text": "a"}], None)], usage=usage_metadata(9, 1)),
        response([candidate([{"text": "b"}], "STOP")], usage=usage_metadata(9, 2, cached=4, thoughts=5)),
    ]
    request = chat([user("hi")], stream=True, stream_options={"include_usage": True})
    translator = ADAPTER.stream_translator(AI_STUDIO, request)
    payloads = translator.feed(encode_events(events)) + translator.finish()
    chunks = [ChatCompletionChunk.model_validate_json(p) for p in payloads]
    for raw in payloads[:-1]:
        assert orjson.loads(raw)["usage"] is None
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert orjson.loads(payloads[-1])["usage"] == {
        "prompt_tokens": 9,
        "completion_tokens": 7,
        "total_tokens": 16,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 5},
    }
    assert translator.usage is not None and translator.usage.cached_tokens == 4


def tool_events() -> list[Json]:
    usage = usage_metadata(20, 8)
    first = response([candidate([{"text": "Checking "}], None)], usage=usage)
    calls = function_call_response(
        [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "Europe/Paris"})],
        signature="c2ln",
        ids=None,
        usage=usage,
    )
    return [first, calls]


def test_streamed_tool_calls_equal_plain_result_at_every_split() -> None:
    events = tool_events()
    merged = response(
        [candidate([{"text": "Checking "}, *events[1]["candidates"][0]["content"]["parts"]])],
        usage=usage_metadata(20, 8),
    )
    expected_calls = plain_calls(plain(merged))
    assert [c["name"] for c in expected_calls] == ["get_weather", "get_time"]
    data = encode_events(events)
    for cut in range(1, len(data)):
        chunks, _ = stream_chunks(events, [cut])
        assert reassemble(chunks) == {
            "content": "Checking ",
            "tool_calls": expected_calls,
            "finish_reason": "tool_calls",
        }


def test_stream_fed_byte_by_byte() -> None:
    events = text_stream(["żółw ", "🐢"], usage=usage_metadata(1, 2))
    data = encode_events(events)
    chunks, _ = stream_chunks(events, list(range(1, len(data))))
    assert reassemble(chunks)["content"] == "żółw 🐢"


def test_streamed_tool_call_chunk_shape() -> None:
    chunks, _ = stream_chunks([function_call_response([("f", {"a": 1})])])
    call_chunks = [c for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert len(call_chunks) == 1
    delta = call_chunks[0].choices[0].delta.tool_calls[0]  # type: ignore[index]
    assert (delta.index, delta.type, delta.function.name, delta.function.arguments) == (  # type: ignore[union-attr]
        0,
        "function",
        "f",
        '{"a":1}',
    )
    assert PLAIN_ID.match(delta.id or "")


def test_stream_safety_finish() -> None:
    events = [response([candidate([{"text": "Sure, "}], None)]), safety_response()]
    chunks, _ = stream_chunks(events)
    assert reassemble(chunks) == {"content": "Sure, ", "tool_calls": [], "finish_reason": "content_filter"}


def test_stream_blocked_prompt() -> None:
    chunks, translator = stream_chunks([blocked_prompt_response(usage=usage_metadata(3, 0))])
    assert [c.choices[0].delta.role for c in chunks] == ["assistant", None]
    assert reassemble(chunks) == {"content": "", "tool_calls": [], "finish_reason": "content_filter"}
    assert translator.usage is not None and translator.usage.prompt_tokens == 3


def test_stream_with_two_candidates() -> None:
    events = [
        response([candidate([{"text": "A"}], None, 0), candidate([{"text": "B"}], None, 1)]),
        response([candidate([{"text": "a"}], "STOP", 0), candidate([{"text": "b"}], "MAX_TOKENS", 1)]),
    ]
    chunks, _ = stream_chunks(events)
    assert reassemble(chunks, 0) == {"content": "Aa", "tool_calls": [], "finish_reason": "stop"}
    assert reassemble(chunks, 1) == {"content": "Bb", "tool_calls": [], "finish_reason": "length"}


@pytest.mark.parametrize(
    "events",
    [
        [],
        [response([candidate([{"text": "partial"}], None)], usage=usage_metadata(1, 1))],
        [
            response([candidate([{"text": "A"}], "STOP", 0), candidate([{"text": "B"}], None, 1)]),
        ],
    ],
)
def test_stream_without_finish_reason_is_a_cut(events: list[Json]) -> None:
    translator = ADAPTER.stream_translator(AI_STUDIO, chat([user("hi")], stream=True))
    translator.feed(encode_events(events))
    with pytest.raises(UpstreamStreamError) as caught:
        translator.finish()
    assert caught.value.cluster == AI_STUDIO.key
    assert caught.value.failure.status == 502


def test_stream_error_event_mid_stream() -> None:
    translator = ADAPTER.stream_translator(AI_STUDIO, chat([user("hi")], stream=True))
    first = translator.feed(encode_events([response([candidate([{"text": "Hi"}], None)])]))
    assert len(first) == 2
    error = google_error(429, "RESOURCE_EXHAUSTED", "slow down", retry_delay="2s", wrapped=True)
    with pytest.raises(UpstreamStreamError) as caught:
        translator.feed(encode_events([error]))
    assert caught.value.failure == Failure(
        status=429,
        error_type="rate_limit_error",
        message="slow down",
        code="RESOURCE_EXHAUSTED",
        retryable=True,
        breaker_counts=True,
        retry_after_s=2.0,
    )


def test_stream_malformed_chunk() -> None:
    translator = ADAPTER.stream_translator(AI_STUDIO, chat([user("hi")], stream=True))
    with pytest.raises(UpstreamStreamError):
        translator.feed(b"data: {not json\n\n")
