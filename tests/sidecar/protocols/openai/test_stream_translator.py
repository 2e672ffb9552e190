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


# --- reads relayed as they came (`relayed_as_is`, used by sidecar/serving/relay.py) -------------


def _as_is(data: bytes, provider: str = "openai") -> bool:
    return OpenAIStreamTranslator(provider).relayed_as_is(data)


def test_whole_plain_events_are_relayed_as_they_came_one_or_many_per_read() -> None:
    assert _as_is(_sse(PLAIN))
    assert _as_is(_sse(PLAIN) * 3)


@pytest.mark.parametrize(
    "read",
    [
        _sse({**PLAIN, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        _sse({**PLAIN, "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
        _sse({"error": {"message": "overloaded"}}),
        b"data: " + orjson.dumps(PLAIN)[:40] + b"}\n\n",  # cut JSON that still ends in a brace
        b"data: [DONE]\n\n",
        _sse(PLAIN).replace(b"\n\n", b"\r\n\r\n"),
        b"event: x\n" + _sse(PLAIN),
        _sse(PLAIN) + b": keep-alive\n\n",
        _sse(PLAIN)[:-1],  # the event is not over yet
        b'data: {"a":1}\ndata: {"b":2}\n\n',  # one event of two data lines
    ],
    ids=["finish", "usage", "error", "malformed", "done", "crlf", "named", "comment", "open", "two-lines"],
)
def test_a_read_with_anything_to_see_or_check_is_fed(read: bytes) -> None:
    assert not _as_is(read)


def test_nothing_is_relayed_as_is_while_a_line_is_held_or_for_a_provider_with_rules() -> None:
    translator = OpenAIStreamTranslator("openai")
    whole = _sse(PLAIN)
    assert translator.feed(whole[:20]) == []
    assert not translator.relayed_as_is(whole)
    assert not _as_is(whole, "ollama")  # its answer rules may change a chunk (think tags …)


def test_a_malformed_read_refused_here_is_an_error_when_fed() -> None:
    translator = OpenAIStreamTranslator("openai")
    read = b"data: " + orjson.dumps(PLAIN)[:40] + b"}\n\n"
    assert not translator.relayed_as_is(read)
    with pytest.raises(UpstreamStreamError):
        translator.feed(read)
