"""The sliced JSON parser (sidecar/large_json.py) against orjson: the same value for valid JSON,
an error for invalid JSON, and a refusal only where it is documented (integers outside 64 bits,
nesting past the bound, numbers longer than `LONG_TOKEN`); no callback of the parse runs long.

The property tests shrink the parser's sizes (`SLICE_ABOVE`, `WINDOW`, `LONG_TOKEN`) so that
small documents cross every window boundary, held-back token and long-string piece."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from astra_sidecar.sidecar import large_json

I64 = 2**63 - 1
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-I64, I64)  # yajl refuses -2**63, orjson takes it: tested apart
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=40,
)
#: Bytes that make JSON interesting to break.
NASTY = [b'"', b"\\", b"u", b"d8", b"dc", b"\\ud800", b"\\udc00", b"\xff", b"\xed\xa0\x80", b"\xc0\x80",
         b"\x0b", b"\x0c", b"\x00", b"\x1f", b" ", b",", b":", b"[", b"]", b"{", b"}", b"0", b"-", b".",
         b"e", b"+", b"1", b"9" * 20, b"NaN", b"Infinity", b"true", b"nul", b"\xef\xbb\xbf", b"\xe4\xb8"]  # fmt: skip


@pytest.fixture
def tiny_windows(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(large_json, "SLICE_ABOVE", 0)
    monkeypatch.setattr(large_json, "WINDOW", 7)
    monkeypatch.setattr(large_json, "LONG_TOKEN", 32)  # above any float orjson writes
    yield


def sliced(raw: bytes, max_depth: int = large_json.ORJSON_DEPTH) -> tuple[str, Any]:
    try:
        return "ok", asyncio.run(large_json.loads(raw, max_depth=max_depth))
    except orjson.JSONDecodeError as exc:
        return "error", exc


def reference(raw: bytes) -> tuple[str, Any]:
    try:
        return "ok", orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return "error", exc


def encoded(value: Any, ascii_escapes: bool, indent: int | None) -> bytes:
    """JSON text of `value`: orjson's (raw UTF-8), or json's with `\\uXXXX` escapes and pairs."""
    if ascii_escapes or indent is not None:
        return json.dumps(value, ensure_ascii=ascii_escapes, indent=indent).encode()
    return orjson.dumps(value)


def documented_refusal(raw: bytes, error: Exception) -> bool:
    """A value orjson takes that the sliced parser refuses on purpose (see the module docstring)."""
    message = str(error)
    return (
        "integer overflow" in message
        or isinstance(error, large_json.TooDeepError)
        or message.startswith("a number longer than")
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values, ascii_escapes=st.booleans(), indent=st.none() | st.just(1))
def test_valid_json_gives_what_orjson_gives(
    tiny_windows: None, value: Any, ascii_escapes: bool, indent: int | None
) -> None:
    raw = encoded(value, ascii_escapes, indent)
    outcome, got = sliced(raw)
    assert outcome == "ok", got
    # Compared as orjson encodes them: 1 and 1.0 differ, -0.0 keeps its sign, keys keep their order.
    assert orjson.dumps(got) == orjson.dumps(orjson.loads(raw))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=values,
    edits=st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(0, 3), st.sampled_from(NASTY)), min_size=1, max_size=4
    ),
)
def test_broken_json_is_refused_where_orjson_refuses_it(
    tiny_windows: None, value: Any, edits: list[tuple[int, int, bytes]]
) -> None:
    raw = bytearray(encoded(value, ascii_escapes=True, indent=None))
    for at, removed, inserted in edits:
        at %= len(raw) + 1
        raw[at : at + removed] = inserted
    expected, reference_value = reference(bytes(raw))
    outcome, got = sliced(bytes(raw))
    if outcome == "ok":
        assert expected == "ok", f"{bytes(raw)!r} accepted, orjson refuses it: {reference_value}"
        assert orjson.dumps(got) == orjson.dumps(reference_value)
    elif expected == "ok":
        assert documented_refusal(bytes(raw), got), f"{bytes(raw)!r}: {got}"


@pytest.mark.parametrize(
    "raw",
    [
        b"NaN", b"[Infinity]", b"[-Infinity]", b'"\\ud800"', b'["\\udc00x"]', b'"\\ud800\\ud800"',
        b'"\\ud83d\\\\ude00"', b'"\xff"', b'"\xed\xa0\x80"', b'"\xc0\x80"', b"[1] x", b"[1] [2]",
        b"1 2", b"[1,\x0c2]", b"[1,\x0b2]", b"\xef\xbb\xbf{}", b"[1,]", b"01", b"[1e400]", b'{"a" 1}',
        b'"\t"', b" ",
    ],
)  # fmt: skip
def test_what_orjson_refuses_is_refused(tiny_windows: None, raw: bytes) -> None:
    assert reference(raw)[0] == "error"
    outcome, error = sliced(raw)
    assert outcome == "error" and isinstance(error, large_json.SlicedJSONError)
    assert error.msg and "\n" not in error.msg  # one clear line, never yajl's excerpt of the body


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":1,"b":2,"a":3}',  # a repeated key: the last value, at the first place (orjson's way)
        b'"\\ud83d\\ude00 \\u00e9 \xe4\xb8\xad"', b'"\\\\ud800"', b"-0", b"-0.0", b"1e-400", b"[0.1, 1E2, 5e-324]",
        b'["' + b"x" * 50 + b'", "' + b"\\u4e2d" * 30 + b'", "' + "中".encode() * 30 + b'"]',
        b'{"' + b"k" * 50 + b'": 1, "' + b"k" * 50 + b'": 2, "b": "' + b"\\\\" * 30 + b'"}',
        b'"' + b"\\ud83d\\ude00" * 20 + b'"', b"9223372036854775807", b"  [1, 2]  \r\n",
    ],
)  # fmt: skip
def test_edge_values_are_what_orjson_makes(tiny_windows: None, raw: bytes) -> None:
    outcome, got = sliced(raw)
    assert outcome == "ok", got
    assert orjson.dumps(got) == orjson.dumps(orjson.loads(raw))


@pytest.mark.parametrize(
    "raw", [b"18446744073709551615", b"-9223372036854775808", b"123456789012345678901234567890"]
)
def test_integers_outside_64_bits_are_refused(tiny_windows: None, raw: bytes) -> None:
    """orjson reads them (up to 2**64 - 1 as integers, beyond as floats); yajl refuses them, and
    refusing is the safe side."""
    assert reference(raw)[0] == "ok"
    outcome, error = sliced(raw)
    assert outcome == "error" and "integer overflow" in str(error)


def test_nesting_past_the_bound_is_refused_before_it_is_built(tiny_windows: None) -> None:
    assert sliced(b"[" * 100 + b"]" * 100, max_depth=100)[0] == "ok"
    outcome, error = sliced(b"[" * 101 + b"]" * 101, max_depth=100)
    assert outcome == "error" and isinstance(error, large_json.TooDeepError)
    assert sliced(b"[" * 1024 + b"]" * 1024)[0] == "ok"  # orjson's own limit for answers
    outcome, error = sliced(b'{"a":' * 1025 + b"1" + b"}" * 1025)
    assert isinstance(error, large_json.TooDeepError)
    outcome, error = sliced(b"[" * 50_000)  # never closed: refused at depth 1025, not built
    assert isinstance(error, large_json.TooDeepError)


def test_a_number_longer_than_a_long_token_is_refused(tiny_windows: None) -> None:
    assert sliced(b"[0." + b"1" * 25 + b"]")[0] == "ok"
    outcome, error = sliced(b"[0." + b"1" * 40 + b"]")
    assert outcome == "error" and str(error).startswith("a number longer than")


def test_long_strings_are_decoded_in_pieces_as_keys_and_values(tiny_windows: None) -> None:
    long_key, long_value = "k" * 40 + "é", "v\n" * 40 + "🙂"
    raw = json.dumps({long_key: [long_value, {"x": long_value}], "short": long_key}).encode()
    assert sliced(raw) == ("ok", {long_key: [long_value, {"x": long_value}], "short": long_key})
    assert sliced(json.dumps(long_value).encode()) == ("ok", long_value)
    outcome, error = sliced(b'["' + b"x" * 40)
    assert outcome == "error" and "does not end" in str(error)


def test_small_bodies_go_to_orjson_in_one_call() -> None:
    raw = b'{"a": [1, 2]}'
    assert asyncio.run(large_json.loads(raw)) == {"a": [1, 2]}
    with pytest.raises(orjson.JSONDecodeError) as caught:
        asyncio.run(large_json.loads(b"{"))
    assert not isinstance(caught.value, large_json.SlicedJSONError)


def test_a_known_answer_is_handed_over_once_and_its_error_each_time(tiny_windows: None) -> None:
    async def scenario() -> None:
        raw = b'{"choices": [1, 2]}'
        with await large_json.known_answer(raw):
            first = large_json.answer_json(raw)
            first["changed"] = True
            assert large_json.answer_json(raw) == {"choices": [1, 2]}  # parsed again, unchanged
            assert large_json.answer_json(b'{"other": 1}') == {"other": 1}
        bad = b'{"choices": [1, 2'
        with await large_json.known_answer(bad):
            for _ in range(2):
                with pytest.raises(large_json.SlicedJSONError):
                    large_json.answer_json(bad)
        assert large_json._known is None

    asyncio.run(scenario())


def small_messages(size: int) -> bytes:
    messages, total = [], 0
    while total < size:
        message = {"role": "user", "content": f"message {len(messages)} with a few words é"}
        messages.append(message)
        total += len(orjson.dumps(message)) + 1
    return orjson.dumps({"model": "m", "messages": messages})


def tool_call_answer(size: int) -> bytes:
    arguments = json.dumps({"path": "/src/x.py", "text": 'print("hi")\n' * 300})
    call = {"id": "call_0", "type": "function", "function": {"name": "write", "arguments": arguments}}
    calls = [{**call, "id": f"call_{i}"} for i in range(size // (len(orjson.dumps(call)) + 1))]
    message = {"role": "assistant", "content": None, "tool_calls": calls}
    choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
    return orjson.dumps({"id": "x", "object": "chat.completion", "model": "m", "choices": [choice]})


async def longest_callback_ms(work: Any) -> tuple[Any, float]:
    """Runs `work` beside a task that takes every turn of the loop: the longest gap between two
    of its turns is the longest callback that ran meanwhile."""
    done, gaps = asyncio.Event(), [0.0]

    async def turns() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    watcher = asyncio.create_task(turns())
    await asyncio.sleep(0)
    try:
        result = await work
    finally:
        done.set()
        await watcher
    return result, max(gaps) * 1000.0


#: A slice of the parse is about 0.5 ms (16 KiB of small objects) on the 2-core VM; the bound
#: leaves room for a busy machine. orjson took 30-40 ms for the 8 MiB body in one callback.
SLICE_BOUND_MS = 15.0


@pytest.mark.parametrize("body", ["8 MiB of small messages", "32 MiB of tool calls"])
def test_no_callback_of_a_large_parse_runs_long(body: str) -> None:
    raw = small_messages(8 << 20) if body.startswith("8") else tool_call_answer(32 << 20)

    async def scenario() -> tuple[Any, float]:
        return await longest_callback_ms(large_json.loads(raw))

    value, longest = asyncio.run(scenario())
    assert value == orjson.loads(raw)
    assert longest < SLICE_BOUND_MS, f"a callback of {longest:.1f} ms"


def test_without_the_c_backend_a_large_body_goes_to_orjson_and_an_error_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import ijson.backends

    monkeypatch.delattr(ijson.backends, "yajl2_c", raising=False)
    monkeypatch.setitem(sys.modules, "ijson.backends.yajl2_c", None)  # its import now fails
    with caplog.at_level(logging.ERROR, logger="astra.sidecar"):
        assert large_json._backend.__wrapped__() is None
    assert "yajl2_c" in caplog.text and "install ijson" in caplog.text
    monkeypatch.setattr(large_json, "_backend", lambda: None)
    raw = small_messages(large_json.SLICE_ABOVE * 2)
    assert asyncio.run(large_json.loads(raw)) == orjson.loads(raw)
    with pytest.raises(orjson.JSONDecodeError) as caught:
        asyncio.run(large_json.loads(raw[:-1]))
    assert not isinstance(caught.value, large_json.SlicedJSONError)
