"""The Bedrock adapter's broken streams: exception and error frames, cuts, CRC mismatches and
malformed events, each raised after the chunks that came before it."""

from __future__ import annotations

import pytest
from openai.types.chat import ChatCompletionChunk

from astra_sidecar.sidecar.errors import UpstreamStreamError
from astra_sidecar.sidecar.protocols.base import Failure
from tests.fakes import bedrock_upstream as fake
from tests.fakes.bedrock_upstream import event_frame, exception_frame, stream_frames, text_response
from tests.sidecar.protocols.bedrock.helpers import ADAPTER, CLUSTER, chat, user


def _stream_failure(frames: list[bytes], *, split: int | None = None) -> tuple[list[bytes], Failure]:
    translator = ADAPTER.stream_translator(CLUSTER, chat(user("x"), stream=True))
    data = b"".join(frames)
    pieces = frames if split is None else [data[i : i + split] for i in range(0, len(data), split)]
    out: list[bytes] = []
    with pytest.raises(UpstreamStreamError) as raised:
        for piece in pieces:
            out.extend(translator.feed(piece))
        translator.finish()
    for chunk in out:
        ChatCompletionChunk.model_validate_json(chunk)
    assert raised.value.cluster == CLUSTER.key
    return out, raised.value.failure


@pytest.mark.parametrize("split", [None, 1, 11])
def test_exception_frame_mid_stream(split: int | None) -> None:
    frames = stream_frames(text_response("partial answer"))[:3]
    frames.append(exception_frame("throttlingException", "Too many tokens, please wait."))
    out, failure = _stream_failure(frames, split=split)
    assert b"".join(out).count(b'"content"') >= 2
    assert failure == Failure(
        status=429,
        error_type="rate_limit_error",
        message="Too many tokens, please wait.",
        code="ThrottlingException",
        retryable=True,
        breaker_counts=True,
    )


def test_exception_in_the_same_read_as_text_returns_text_first_then_raises() -> None:
    translator = ADAPTER.stream_translator(CLUSTER, chat(user("x"), stream=True))
    frames = stream_frames(text_response("abc"), piece=10)[:2]
    data = b"".join([*frames, exception_frame("internalServerException", "boom")])
    chunks = translator.feed(data)
    assert [ChatCompletionChunk.model_validate_json(c).choices[0].delta.content for c in chunks] == [
        "",
        "abc",
    ]
    with pytest.raises(UpstreamStreamError) as raised:
        translator.finish()
    assert (raised.value.failure.status, raised.value.failure.retryable) == (500, True)
    with pytest.raises(UpstreamStreamError):
        translator.feed(b"")


@pytest.mark.parametrize(("original", "retryable"), [(500, True), (429, True), (400, False), (None, False)])
def test_model_stream_error_exception(original: int | None, retryable: bool) -> None:
    fields = {"originalStatusCode": original, "originalMessage": "upstream"} if original else {}
    _out, failure = _stream_failure([exception_frame("modelStreamErrorException", "model failed", **fields)])
    assert (failure.status, failure.error_type, failure.code) == (
        502,
        "server_error",
        "ModelStreamErrorException",
    )
    assert failure.retryable is retryable
    assert failure.breaker_counts


def test_validation_exception_frame_is_not_retryable() -> None:
    _out, failure = _stream_failure([exception_frame("validationException", "bad")])
    assert (failure.status, failure.retryable, failure.breaker_counts) == (400, False, False)


def test_error_frame() -> None:
    _out, failure = _stream_failure([fake.error_frame("ServiceUnavailableException", "try later")])
    assert (failure.status, failure.message, failure.retryable) == (503, "try later", True)


@pytest.mark.parametrize("keep", [0, 1, 3])
def test_eof_before_message_stop_is_a_cut(keep: int) -> None:
    frames = stream_frames(text_response("abcdef"))[:keep]
    _out, failure = _stream_failure(frames)
    assert (failure.status, failure.code, failure.retryable) == (502, "bad_upstream_stream", True)


def test_eof_inside_a_frame_is_a_cut_even_after_message_stop() -> None:
    frames = stream_frames(text_response("ab"))
    _out, failure = _stream_failure([*frames[:-1], frames[-1][:-3]])
    assert failure.code == "bad_upstream_stream"


def test_corrupted_crc_is_a_malformed_stream() -> None:
    frames = stream_frames(text_response("ab"))
    broken = bytearray(frames[1])
    broken[-1] ^= 0x01
    out, failure = _stream_failure([frames[0], bytes(broken)])
    assert len(out) == 1
    assert failure.status == 502 and "ChecksumMismatch" in failure.message


def test_corrupted_frame_in_the_same_read_returns_earlier_chunks_first() -> None:
    frames = stream_frames(text_response("ab"))
    broken = bytearray(frames[2])
    broken[20] ^= 0x01
    translator = ADAPTER.stream_translator(CLUSTER, chat(user("x"), stream=True))
    chunks = translator.feed(frames[0] + frames[1] + bytes(broken))
    assert [ChatCompletionChunk.model_validate_json(c).choices[0].delta.content for c in chunks] == ["", "ab"]
    for _ in range(2):
        with pytest.raises(UpstreamStreamError) as raised:
            translator.finish()
        assert raised.value.failure.message == "malformed Bedrock event stream: ChecksumMismatch"


def test_tool_delta_without_start_is_malformed() -> None:
    delta = event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{}"}}})
    _out, failure = _stream_failure([delta])
    assert failure.code == "bad_upstream_stream"
