"""The Anthropic adapter's streams: every chunk must parse as `ChatCompletionChunk`; streams are
produced by the fake's encoder and fed at awkward boundaries
(`astra_sidecar.sidecar.protocols.anthropic.upstream_stream`).
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletionChunk

from astra_sidecar.sidecar.errors import UpstreamStreamError
from astra_sidecar.sidecar.protocols.anthropic.upstream_stream import AnthropicStreamTranslator
from astra_sidecar.sidecar.protocols.anthropic.upstream_tools import JSON_TOOL_NAME
from astra_sidecar.sidecar.protocols.base import Usage
from tests.fakes.anthropic_upstream import (
    ToolUse,
    encode_events,
    error_event,
    message,
    message_events,
    sse_bytes,
    text_message,
    tool_message,
    usage,
)
from tests.sidecar.protocols.anthropic.helpers import (
    ADAPTER,
    CLUSTER,
    PARALLEL,
    Json,
    chat,
    parse,
    text,
    user,
)

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


def test_thinking_goes_to_reasoning_content_pings_and_unknown_events_are_ignored() -> None:
    msg = message([{"type": "thinking", "thinking": "let me think", "signature": "s1"}, text("Answer.")])
    events = message_events(msg, ping_every=1)
    events.insert(3, {"type": "brand_new_event", "payload": 1})
    chunks, _ = translate([encode_events(events)], STREAM_REQUEST)
    assert reassemble(chunks)["content"] == "Answer."
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in chunks)
    assert reasoning == "let me think"
    assert all(set(c["choices"][0]["delta"]) <= {"role", "content", "reasoning_content"} for c in chunks)


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
