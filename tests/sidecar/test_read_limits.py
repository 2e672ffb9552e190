"""The read limits on upstream answers (`sidecar/limits.py`, `sidecar/upstream_body.py`,
`sidecar/sse.py`): each refuses past its bound with a typed, non-retried failure and lets
ordinary answers through unchanged."""

from __future__ import annotations

import gzip
import struct
import zlib

import pytest

from astra_sidecar.sidecar.errors import UpstreamTooLargeError
from astra_sidecar.sidecar.limits import DEFAULT_LIMITS, Limits, limits_from
from astra_sidecar.sidecar.sse import SseDecoder
from astra_sidecar.sidecar.upstream_body import FrameWatch, Inflater, SseWatch, inflater_for

MIB = 1024 * 1024


async def inflate(inflater: Inflater, data: bytes) -> bytes:
    return b"".join([piece async for piece in inflater.pieces(data)])


async def test_an_ordinary_gzip_answer_inflates_unchanged() -> None:
    body = b'{"choices": []}' * 1000
    inflater = inflater_for("gzip", DEFAULT_LIMITS)
    assert inflater is not None
    assert await inflate(inflater, gzip.compress(body)) == body


async def test_a_gzip_bomb_stops_at_the_decompressed_limit() -> None:
    bomb = gzip.compress(b"\0" * (8 * MIB))
    limits = Limits(max_decompressed_bytes=2 * MIB, max_compression_ratio=10_000)
    with pytest.raises(UpstreamTooLargeError) as refused:
        await inflate(Inflater("gzip", limits), bomb)
    failure = refused.value.failure
    assert (failure.status, failure.code, failure.retryable, failure.breaker_counts) == (
        502, "upstream_too_large", False, True
    )


async def test_a_high_ratio_is_refused_past_the_grace_bytes() -> None:
    bomb = zlib.compress(b"a" * (4 * MIB), 9)
    with pytest.raises(UpstreamTooLargeError, match="more than 50:1"):
        await inflate(Inflater("deflate", Limits(max_compression_ratio=50)), bomb)


def test_encodings_the_sidecar_did_not_ask_for_are_refused() -> None:
    assert inflater_for(None, DEFAULT_LIMITS) is None
    assert inflater_for("identity", DEFAULT_LIMITS) is None
    with pytest.raises(UpstreamTooLargeError) as refused:
        inflater_for("br", DEFAULT_LIMITS)
    assert refused.value.failure.code == "upstream_refused"


def test_sse_lines_and_events_up_to_the_limit_pass_and_longer_ones_are_refused() -> None:
    watch = SseWatch(Limits(max_sse_line_bytes=64))
    for _ in range(100):
        watch.feed(b"data: " + b"x" * 50 + b"\n\n")
    with pytest.raises(UpstreamTooLargeError):
        for _ in range(3):
            watch.feed(b"x" * 30)


def test_the_sse_decoder_refuses_a_line_that_never_ends() -> None:
    decoder = SseDecoder(max_bytes=100)
    assert decoder.feed(b"data: " + b"y" * 60) == []
    with pytest.raises(UpstreamTooLargeError):
        decoder.feed(b"y" * 60)


def test_an_event_stream_frame_declaring_more_than_the_limit_is_refused() -> None:
    watch = FrameWatch(Limits(max_event_frame_bytes=1000))
    small = struct.pack(">I", 100) + b"\0" * 96
    watch.feed(small + small[:10])
    watch.feed(small[10:])
    with pytest.raises(UpstreamTooLargeError, match="5000 bytes"):
        watch.feed(struct.pack(">I", 5000))


def test_table_limits_override_the_defaults_by_their_camel_case_names() -> None:
    limits = limits_from({"maxAnswerBytes": 123, "maxInFlight": 7})
    assert (limits.max_answer_bytes, limits.max_in_flight) == (123, 7)
    assert limits.max_sse_line_bytes == DEFAULT_LIMITS.max_sse_line_bytes
    assert limits_from({}) is DEFAULT_LIMITS
