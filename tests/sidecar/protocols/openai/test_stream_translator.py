"""The OpenAI-compatible stream relay: chunks with nothing to normalise go out byte for byte, and
every chunk is still parsed, so a malformed one is an error, never relayed."""

from __future__ import annotations

import orjson
import pytest

from astra_sidecar.sidecar.errors import UpstreamStreamError
from astra_sidecar.sidecar.protocols.openai.adapter import OpenAIStreamTranslator


def _sse(chunk: object) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


PLAIN = {
    "id": "c",
    "object": "chat.completion.chunk",
    "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}],
}


def test_a_plain_chunk_goes_out_as_it_came() -> None:
    translator = OpenAIStreamTranslator("openai")
    raw = b'{"id":"c","choices":[{"index":0,"delta":{"content":"say \\"usage\\""},"finish_reason":null}],"usage":null}'
    assert translator.feed(b"data: " + raw + b"\n\n") == [raw]
    assert translator.usage is None


@pytest.mark.parametrize("cut", [10, 40, 80])
def test_a_chunk_cut_short_is_a_stream_error(cut: int) -> None:
    translator = OpenAIStreamTranslator("openai")
    with pytest.raises(UpstreamStreamError):
        translator.feed(b"data: " + orjson.dumps(PLAIN)[:cut] + b"\n\n")


def test_a_provider_finish_reason_is_normalised_and_usage_is_read() -> None:
    translator = OpenAIStreamTranslator("openai")
    last = {**PLAIN, "choices": [{"index": 0, "delta": {}, "finish_reason": "eos"}]}
    usage = {**PLAIN, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
    (finished,) = translator.feed(_sse(last))
    assert orjson.loads(finished)["choices"][0]["finish_reason"] == "stop"
    translator.feed(_sse(usage) + b"data: [DONE]\n\n")
    assert translator.usage is not None and (
        translator.usage.prompt_tokens,
        translator.usage.completion_tokens,
    ) == (3, 2)
    assert translator.finish() == []


def test_an_error_object_in_the_stream_is_raised() -> None:
    translator = OpenAIStreamTranslator("openai")
    with pytest.raises(UpstreamStreamError):
        translator.feed(_sse({"error": {"message": "overloaded", "type": "server_error"}}))
