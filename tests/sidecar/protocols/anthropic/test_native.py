"""The native pass-through for Anthropic callers (`native.NATIVE`): the upstream request, and the
answers it only looks at: recorded-style payloads (the fake upstream's encoder, and the examples
of https://docs.anthropic.com/en/api/messages and
https://docs.anthropic.com/en/docs/build-with-claude/streaming), never translated."""

from __future__ import annotations

import dataclasses
import random
from types import MappingProxyType
from typing import Any

import orjson
import pytest

from astra_sidecar.sidecar.errors import UpstreamMalformedError, UpstreamStatusError, UpstreamStreamError
from astra_sidecar.sidecar.protocols.anthropic.native import NATIVE
from astra_sidecar.sidecar.protocols.anthropic.policy_access import ACCESS
from astra_sidecar.sidecar.protocols.base import Usage
from astra_sidecar.sidecar.protocols.codec import IngressCall
from astra_sidecar.sidecar.protocols.openai import wire as shapes
from tests.fakes.anthropic_upstream import (
    encode_events,
    error_event,
    message_events,
    sse_bytes,
    text_message,
    usage,
)
from tests.sidecar.protocols.anthropic.helpers import ADAPTER, AUTH, CLUSTER, PARALLEL, USER, chat, user

#: The documented answer of `POST /v1/messages`.
DOCS_MESSAGE = {
    "content": [{"text": "Hi! My name is Claude.", "type": "text"}],
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "model": "claude-sonnet-4-20250514",
    "role": "assistant",
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "type": "message",
    "usage": {"input_tokens": 2095, "output_tokens": 503},
}

#: The documented basic stream, as sent (spacing included).
DOCS_STREAM = b"""event: message_start
data: {"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant", "content": [], "model": "claude-opus-4-20250514", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}

event: content_block_start
data: {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}

event: content_block_delta
data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}}

event: content_block_stop
data: {"type": "content_block_stop", "index": 0}

event: message_delta
data: {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence":null}, "usage": {"output_tokens": 15}}

event: message_stop
data: {"type": "message_stop"}

"""

STREAM_REQUEST = chat(user("q"), stream=True, stream_options={"include_usage": True})


def translated_failure(feed: bytes) -> Any:
    """What the adapter's translator raises for the same bytes (the native watch must match)."""
    translator = ADAPTER.stream_translator(CLUSTER, STREAM_REQUEST)
    with pytest.raises(UpstreamStreamError) as caught:
        translator.feed(feed)
        translator.finish()
    return caught.value.failure


def watched(pieces: list[bytes]) -> Usage | None:
    watch = NATIVE.watch(CLUSTER)
    for piece in pieces:
        watch.feed(piece)
    watch.finish()
    return watch.usage


# --- the upstream request -----------------------------------------------------------------------


def test_request_keeps_the_body_and_merges_the_callers_version_and_betas() -> None:
    cluster = dataclasses.replace(CLUSTER, headers=MappingProxyType({"anthropic-beta": "own-1,shared"}))
    inbound = {"Anthropic-Version": " 2026-10-21 ", "anthropic-beta": "shared, caller-2", "x-other": "no"}
    call = IngressCall(agent_id="a", body={}, stream=True, inbound=inbound)
    body = {"model": "claude-test", "max_tokens": 10, "messages": USER, "stream": True}
    request = NATIVE.request(cluster, body, AUTH, call)
    assert (request.url, request.method, request.stream) == ("http://fake.invalid/v1/messages", "POST", True)
    assert orjson.loads(request.body) == body
    assert dict(request.headers) == {
        "content-type": "application/json",
        "anthropic-version": "2026-10-21",
        "anthropic-beta": "own-1,shared,caller-2",
        "x-api-key": "sk-ant-test",
    }


def test_request_without_caller_headers_uses_the_clusters() -> None:
    call = IngressCall(agent_id="a", body={}, stream=False, inbound={"anthropic-version": "  "})
    request = NATIVE.request(CLUSTER, {"messages": USER}, AUTH, call)
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "anthropic-beta" not in request.headers
    assert request.stream is False


def test_the_native_path_applies_the_policy_through_access() -> None:
    assert NATIVE.access is ACCESS


# --- whole answers ------------------------------------------------------------------------------


def test_validate_reads_the_usage_of_a_message() -> None:
    assert NATIVE.validate(CLUSTER, orjson.dumps(DOCS_MESSAGE)) == Usage(2095, 503)
    cached = text_message("Sunny.", usage_=usage(20, 3, cache_creation=50, cache_read=900))
    assert NATIVE.validate(CLUSTER, orjson.dumps(cached)) == Usage(970, 3, cached_tokens=900)
    assert NATIVE.validate(CLUSTER, orjson.dumps({**DOCS_MESSAGE, "usage": None})) is None


@pytest.mark.parametrize(
    ("error_type", "status"),
    [("overloaded_error", 503), ("invalid_request_error", 400), ("brand_new_error", 500), (None, 500)],
)
def test_an_error_object_in_a_200_is_classified_as_the_adapter_does(
    error_type: str | None, status: int
) -> None:
    raw = orjson.dumps({"type": "error", "error": {"type": error_type, "message": "boom"}})
    with pytest.raises(UpstreamStatusError) as native:
        NATIVE.validate(CLUSTER, raw)
    with pytest.raises(UpstreamStatusError) as adapter:
        ADAPTER.parse_response(CLUSTER, chat(user("q")), raw)
    assert native.value.failure == adapter.value.failure
    assert native.value.failure.status == status
    assert native.value.cluster == CLUSTER.key


@pytest.mark.parametrize(
    "raw",
    [
        b"<html>oops</html>",
        b"[1]",
        b'{"type": "message"}',
        b'{"type": "message", "content": "text"}',
        orjson.dumps({**DOCS_MESSAGE, "type": "completion"}),
        orjson.dumps({key: value for key, value in DOCS_MESSAGE.items() if key != "type"}),
    ],
)
def test_anything_else_is_malformed(raw: bytes) -> None:
    with pytest.raises(UpstreamMalformedError) as caught:
        NATIVE.validate(CLUSTER, raw)
    assert (caught.value.failure.status, caught.value.failure.code) == (502, "upstream_malformed")
    assert caught.value.cluster == CLUSTER.key


# --- streams ------------------------------------------------------------------------------------


def test_watch_reads_the_documented_stream() -> None:
    assert watched([DOCS_STREAM]) == Usage(prompt_tokens=25, completion_tokens=15)


def test_watch_usage_matches_the_translators_at_any_split() -> None:
    data = sse_bytes(PARALLEL, json_chunk=3)
    translator = ADAPTER.stream_translator(CLUSTER, STREAM_REQUEST)
    translator.feed(data)
    translator.finish()
    assert translator.usage == Usage(prompt_tokens=312, completion_tokens=40, cached_tokens=300)
    rng = random.Random(7)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(data)), 12))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        assert watched(pieces) == translator.usage
    crlf = encode_events(message_events(PARALLEL), newline="\r\n")
    assert watched([crlf[i : i + 1] for i in range(len(crlf))]) == translator.usage


def test_watch_usage_so_far_and_cumulative_message_delta() -> None:
    events = message_events(text_message("hi", usage_=usage(10, 3, cache_read=4)))
    events[-2]["usage"] = {"output_tokens": 9, "input_tokens": 11, "cache_read_input_tokens": 6}
    watch = NATIVE.watch(CLUSTER)
    watch.feed(encode_events(events[:1]))
    assert watch.usage == Usage(prompt_tokens=14, completion_tokens=1, cached_tokens=4)
    watch.feed(encode_events(events[1:]))
    watch.finish()
    assert watch.usage == Usage(prompt_tokens=17, completion_tokens=9, cached_tokens=6)


def test_feed_is_true_once_a_whole_event_has_arrived() -> None:
    first = encode_events(message_events(text_message("hi"))[:1])
    watch = NATIVE.watch(CLUSTER)
    assert watch.feed(first[:-1]) is False
    assert watch.feed(first[-1:]) is True
    assert watch.feed(b"event: ping\n") is True


def test_an_error_event_fails_as_the_translator_does() -> None:
    events = message_events(text_message("partial answer here"))[:5]
    data = encode_events([*events, error_event("overloaded_error", "Overloaded")])
    watch = NATIVE.watch(CLUSTER)
    assert watch.feed(encode_events(events)) is True
    with pytest.raises(UpstreamStreamError) as caught:
        watch.feed(data[len(encode_events(events)) :])
    assert caught.value.failure == translated_failure(data)
    assert (caught.value.failure.status, caught.value.failure.retryable) == (503, True)
    assert caught.value.cluster == CLUSTER.key


@pytest.mark.parametrize("keep", [0, 1, 6, -2, -1])
def test_a_cut_fails_at_finish_as_the_translator_does(keep: int) -> None:
    events = message_events(text_message("never finished"))
    data = encode_events(events[:keep]) if keep else b""
    watch = NATIVE.watch(CLUSTER)
    watch.feed(data)
    with pytest.raises(UpstreamStreamError) as caught:
        watch.finish()
    assert caught.value.failure == translated_failure(data)
    assert caught.value.failure.code == "upstream_stream_cut"


def test_a_cut_inside_message_stop_is_a_cut() -> None:
    data = sse_bytes(text_message("almost"))
    watch = NATIVE.watch(CLUSTER)
    watch.feed(data[: len(data) - 10])
    with pytest.raises(UpstreamStreamError):
        watch.finish()


@pytest.mark.parametrize(
    "data", [b"event: message_start\ndata: {not json\n\n", b"event: message_start\ndata: [1]\n\n"]
)
def test_event_data_that_is_not_an_object_is_malformed(data: bytes) -> None:
    with pytest.raises(UpstreamStreamError) as caught:
        NATIVE.watch(CLUSTER).feed(data)
    assert caught.value.failure == translated_failure(data)
    assert caught.value.failure.code == "upstream_malformed"


def test_events_after_message_stop_are_ignored() -> None:
    data = sse_bytes(text_message("done")) + encode_events([error_event()]) + b"data: {not json\n\n"
    assert watched([data]) == Usage(prompt_tokens=10, completion_tokens=5)
    assert watched([sse_bytes(text_message("done")).rstrip(b"\n")]) == Usage(10, 5)


def test_the_watch_builds_no_openai_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoChunks:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise AssertionError("a native stream is never translated")

    monkeypatch.setattr(shapes, "ChunkWriter", NoChunks)
    assert watched([sse_bytes(PARALLEL)]) == Usage(prompt_tokens=312, completion_tokens=40, cached_tokens=300)
    with pytest.raises(AssertionError):
        ADAPTER.stream_translator(CLUSTER, STREAM_REQUEST).feed(sse_bytes(PARALLEL))
