"""How a stream's bytes reach the client (`sidecar/serving/relay.py`, `_Relay`): a stream whose
upstream has already ended goes out with the response's end in one write; anything else is
written as it comes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson

from astra_sidecar.sidecar.clock import ManualClock
from astra_sidecar.sidecar.protocols.codec import IngressCall
from astra_sidecar.sidecar.protocols.openai.adapter import OpenAIStreamTranslator
from astra_sidecar.sidecar.protocols.openai.ingress import CODEC
from astra_sidecar.sidecar.resilience.attempt import OpenStream, _first_translated
from astra_sidecar.sidecar.resilience.plan import Deadline
from astra_sidecar.sidecar.serving.relay import HELD_MAX, _Relay
from astra_sidecar.sidecar.sse import DONE


def _event(text: str, finish: str | None = None) -> bytes:
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}  # fmt: skip
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


class _Written:
    """The parts of `web.StreamResponse` the relay writes through."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.ends: list[bytes] = []

    async def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    async def write_eof(self, data: bytes = b"") -> None:
        self.ends.append(data)


class _CountingTranslator(OpenAIStreamTranslator):
    __slots__ = ("fed",)

    def __init__(self) -> None:
        super().__init__("openai")
        self.fed: list[bytes] = []

    def feed(self, data: bytes) -> list[bytes]:
        self.fed.append(data)
        return super().feed(data)


async def _relayed(events: list[bytes], *, ended: bool, translator: OpenAIStreamTranslator | None = None) -> _Written:
    async def arriving() -> AsyncIterator[bytes]:
        for event in events:
            yield event

    chunks = arriving()
    translator = translator or OpenAIStreamTranslator("openai")
    first, raw = await _first_translated(chunks, translator)
    opened = OpenStream(None, None, translator, None, first, raw, chunks, contextlib.nullcontext(), lambda: ended)  # type: ignore[arg-type]
    written = _Written()
    call = IngressCall(agent_id="a", body={}, stream=True)
    relay = _Relay(written, opened, CODEC.stream_encoder(call), None, (None, 1.0))  # type: ignore[arg-type]
    await relay.first()
    failure, _ = await relay.rest(Deadline(ManualClock(), 10_000))
    assert failure is None
    await relay.end()
    relay.stop()
    return written


def _sent(written: _Written) -> bytes:
    return b"".join(written.writes) + b"".join(written.ends)


EVENTS = [_event("Hello"), _event(" world"), _event("", "stop"), DONE]


async def test_a_stream_that_has_all_arrived_goes_out_in_one_write_with_the_end() -> None:
    written = await _relayed(EVENTS, ended=True)
    assert written.writes == []
    assert written.ends == [b"".join(EVENTS)]


async def test_a_stream_still_arriving_is_written_as_it_comes() -> None:
    written = await _relayed(EVENTS, ended=False)
    assert written.writes == EVENTS  # the terminator is the encoder's own, written at the end
    assert written.ends == [b""]


async def test_more_than_can_be_held_is_written_as_it_comes() -> None:
    big = [_event("x" * 4000) for _ in range(HELD_MAX // 4000 + 2)] + [_event("", "stop"), DONE]
    written = await _relayed(big, ended=True)
    assert written.writes and written.ends == [b""]
    assert _sent(written) == b"".join(big)



async def test_plain_reads_go_out_as_they_came_without_being_fed_to_the_translator() -> None:
    reads = [_event("Hello"), _event(" big") + _event(" world"), _event("", "stop"), DONE]
    translator = _CountingTranslator()
    written = await _relayed(reads, ended=False, translator=translator)
    assert written.writes == reads
    # the first read opens the stream; the finish and the terminator are read for what they say
    assert translator.fed == [reads[0], reads[2], DONE]
