"""The Bedrock adapter's streamed answers: event-stream framing (the fake's encoder checked by
botocore's decoder), and ConverseStream events translated to chunks that reassemble to the plain
answer however the bytes are split, with usage last."""

from __future__ import annotations

import itertools

import orjson
import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import bedrock_upstream as fake
from tests.fakes.bedrock_upstream import encode_frame, event_frame, stream_frames, text_response, usage
from tests.sidecar.protocols.bedrock.helpers import (
    ADAPTER,
    CLUSTER,
    RESPONSES,
    chat,
    plain,
    reassemble,
    translate,
    user,
)

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


SPLITS = [None, 1, 2, 5, 7, 13, 64, 100_000]


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
