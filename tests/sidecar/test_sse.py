"""SSE decoding: the same events whatever the reads look like.

`SseDecoder` decodes the common reads (whole one-line `data:` events, or one `event:` + `data:`
pair) without its line machinery;
these tests hold that shortcut to the general path: a stream fed one byte at a time never takes
it, so every other way of cutting the same bytes must give the same events.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from astra_sidecar.sidecar.errors import UpstreamTooLargeError
from astra_sidecar.sidecar.limits import DEFAULT_LIMITS
from astra_sidecar.sidecar.sse import SseDecoder, SseEvent
from astra_sidecar.sidecar.upstream_body import SseWatch


def _decode(reads: list[bytes]) -> list[SseEvent]:
    decoder = SseDecoder()
    events: list[SseEvent] = []
    for data in reads:
        events.extend(decoder.feed(data))
    return events + decoder.flush()


def _cut(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    return [stream[a:b] for a, b in itertools.pairwise(points)]


def _bytewise(stream: bytes) -> list[SseEvent]:
    return _decode([stream[i : i + 1] for i in range(len(stream))])


def test_whole_data_events_in_one_read() -> None:
    stream = b'data: {"a":1}\n\ndata: {"b":2}\n\n'
    assert _decode([stream]) == [SseEvent(b'{"a":1}'), SseEvent(b'{"b":2}')] == _bytewise(stream)


def test_one_named_event_in_one_read() -> None:
    stream = b'event: content_block_delta\ndata: {"a":1}\n\n'
    assert _decode([stream]) == [SseEvent(b'{"a":1}', "content_block_delta")] == _bytewise(stream)
    assert _decode([b"event: other\ndata: \n\n"]) == [SseEvent(b"", "other")]


def test_named_events_comments_multi_line_data_and_crlf_take_the_general_path() -> None:
    stream = b": keep-alive\n\nevent: delta\ndata: one\ndata: two\n\ndata:x\r\n\r\n"
    assert _decode([stream]) == [SseEvent(b"one\ntwo", "delta"), SseEvent(b"x")] == _bytewise(stream)


_LINE = st.sampled_from(
    [b'data: {"x":1}', b"data: [DONE]", b"data:tight", b": comment", b"event: named", b"event: ping", b"data: "]
)
_EOL = st.sampled_from([b"\n", b"\r\n", b"\r"])
_EVENT = st.tuples(st.lists(_LINE, min_size=1, max_size=3), _EOL).map(lambda e: e[1].join(e[0]) + e[1] * 2)


@given(st.lists(_EVENT, max_size=8), st.lists(st.integers(min_value=0, max_value=400), max_size=10))
def test_any_cutting_of_a_stream_gives_the_events_of_reading_it_byte_by_byte(
    events: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(events)
    reads = _cut(stream, cuts)
    assert _decode(reads) == _bytewise(stream)


def _refused(reads: list[bytes], limit: int) -> bool:
    watch = SseWatch(replace(DEFAULT_LIMITS, max_sse_line_bytes=limit))
    try:
        for data in reads:
            watch.feed(data)
    except UpstreamTooLargeError:
        return True
    return False


@given(
    st.lists(_EVENT, min_size=1, max_size=8),
    st.lists(st.integers(min_value=0, max_value=400), max_size=10),
    st.integers(min_value=8, max_value=60),
)
def test_the_line_watch_refuses_the_same_streams_however_they_are_cut(
    events: list[bytes], cuts: list[int], limit: int
) -> None:
    stream = b"".join(events)
    reads = _cut(stream, cuts)
    assert _refused(reads, limit) == _refused([stream[i : i + 1] for i in range(len(stream))], limit)
