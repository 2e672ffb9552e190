"""`ChunkWriter` serialises only the choice per chunk: its bytes must stay those of the whole
chunk object, as a client's JSON parser (and a byte-comparing test) sees it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from astra_sidecar.sidecar.protocols.openai.wire import ChunkWriter

DELTAS: list[tuple[dict[str, Any], str | None, int]] = [
    ({"role": "assistant", "content": ""}, None, 0),
    ({"content": 'quote " and \\ and \u00e9'}, None, 0),
    ({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":1}'}}]}, None, 3),
    ({}, "tool_calls", 0),
    ({}, "stop", 12),
]


@pytest.mark.parametrize("include_usage", [True, False])
@pytest.mark.parametrize(("delta", "finish", "index"), DELTAS)
def test_a_chunk_is_the_whole_object_serialised(
    include_usage: bool, delta: dict[str, Any], finish: str | None, index: int
) -> None:
    writer = ChunkWriter(model='model "x"', include_usage=include_usage, id="chatcmpl-1", created=7)
    whole: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 7,
        "model": 'model "x"',
        "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if include_usage:
        whole["usage"] = None
    assert writer.chunk(delta, finish, index) == orjson.dumps(whole)


@pytest.mark.parametrize("include_usage", [True, False])
@pytest.mark.parametrize("text", ["plain", 'quote " and \\ and \u00e9', "line\nbreak"])
def test_a_content_chunk_is_the_chunk_of_that_delta(include_usage: bool, text: str) -> None:
    writer = ChunkWriter(model="m", include_usage=include_usage, id="chatcmpl-1", created=7)
    assert writer.content(text) == writer.chunk({"content": text})
