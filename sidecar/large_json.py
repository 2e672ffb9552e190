"""JSON of a large body, parsed in slices: no callback of the sidecar runs long, whatever the body.

orjson parses a body of up to `SLICE_ABOVE` bytes in one call (about 1 ms at that size, see
docs/hardening.md, "No blocking callback"). A larger one goes to ijson's C backend (yajl) in
windows of `WINDOW` bytes, with a turn of the event loop after each; the result and the errors are
orjson's, except where the two parsers differ and the safe side is to refuse. Each window is
scanned first (bytes methods and regular expressions, which run at C speed):

- yajl lexes a token that spans two of its inputs again from the token's start at every input
  (a 32 MiB string fed 64 KiB at a time took 2 s, 38 s when it was not ASCII), so a string or a
  number that a window would cut is held back to the next window. A string longer than
  `LONG_TOKEN` is decoded by orjson itself, in pieces cut between characters and escapes
  (`_long_string`), yajl gets a placeholder, and the placeholder is replaced at the end. A number
  longer than `LONG_TOKEN` is refused;
- nesting deeper than `max_depth` is refused before yajl builds it (orjson stops at 1024 levels;
  yajl has no bound, and 8 MiB of `[` would be 8 million lists);
- yajl makes a lone surrogate escape (`"\\ud800"`) a `?` and takes form feed and vertical tab for
  whitespace, where orjson refuses: a window's strings with surrogate escapes are checked by
  orjson, and any byte between tokens that JSON does not allow is refused;
- yajl refuses integers outside the signed 64-bit range (orjson reads them up to 2**64 - 1, and as
  floats past it): refused, the safe side.

ijson is imported when the first large body arrives (its import costs about 2 MiB of RSS). Only
its C backend slices: without it (or without ijson) a large body is parsed by orjson in one call,
as small ones are, and an ERROR line says so once: the pure-Python backend is about 10 times
slower, and its rules were not checked against orjson's.

Whole upstream answers are parsed here too (`known_answer`, `answer_json`): the attempt parses a
large answer before the adapter reads it, and the adapter's `answer_json(raw)` takes that result
instead of parsing the bytes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import operator
import os
import re
from collections.abc import Callable, Iterator
from itertools import accumulate, count
from typing import Any, NamedTuple

import orjson

log = logging.getLogger("astra.sidecar")

#: Largest body parsed by orjson in one call (measured: 256 KiB of small objects 0.5-1.1 ms).
SLICE_ABOVE = 256 * 1024
#: Bytes given to yajl at a time: 16 KiB of the densest JSON (`[[],[],…]`) is about 1.5 ms.
WINDOW = 16 * 1024
#: A string longer than this is decoded by orjson in pieces; a longer number is refused.
LONG_TOKEN = 64 * 1024
#: orjson's own depth limit, for answers (bodies are held to `serving.common.MAX_NESTING`).
ORJSON_DEPTH = 1024
#: Nodes of the result visited between two turns of the loop when placeholders are replaced.
_NODES_PER_TURN = 20_000

_STRING = re.compile(rb'"(?:[^"\\]++|\\[\s\S])*+"')
#: Complete strings and whatever lies between them: where it stops, a string is still open.
_TOKENS = re.compile(rb'(?:[^"]++|"(?:[^"\\]++|\\[\s\S])*+")*+')
#: The body of a string up to its closing quote (or as far as the bytes go).
_STRING_BODY = re.compile(rb'(?:[^"\\]++|\\[\s\S])*+')
#: Whole units of a string's body, none cut: characters, escapes, surrogate pairs (a lone
#: surrogate escape is taken once what follows it is there, for orjson to refuse).
_UNITS = re.compile(
    rb"(?:[^\\\x80-\xff]++|[\xc0-\xff][\x80-\xbf]*+|[\x80-\xbf]++"
    rb"|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    rb"|\\u[dD][89a-fA-F][0-9a-fA-F]{2}(?=[\s\S]{6})"
    rb"|\\u(?![dD][89a-fA-F])[0-9a-fA-F]{4}|\\[^u])*+"
)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_NUMBER_BYTES = b"-+.0123456789eE"
#: What JSON allows between tokens: whitespace, punctuation, numbers, literals, string quotes.
_BETWEEN_TOKENS = b' \t\n\r[]{},:"' + _NUMBER_BYTES + b"truefalsn"
_BRACKETS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class SlicedJSONError(orjson.JSONDecodeError):
    """Invalid JSON found by the sliced parser; `msg` says what, and near which byte."""

    def __init__(self, what: str, near: int) -> None:
        super().__init__(f"{what} (near byte {near})", "", near)


class TooDeepError(SlicedJSONError):
    """Nesting past the parser's `max_depth`."""


async def loads(raw: bytes, *, max_depth: int = ORJSON_DEPTH) -> Any:
    """`orjson.loads(raw)`, without a long callback: in slices when `raw` is large. Raises
    `orjson.JSONDecodeError` (a `SlicedJSONError` from the sliced parser)."""
    backend = _backend() if len(raw) > SLICE_ABOVE else None
    if backend is not None:
        return await _SlicedParse(backend, raw, max_depth).run()
    value = orjson.loads(raw)
    deep = max_depth < ORJSON_DEPTH and raw.count(b"[") + raw.count(b"{") > max_depth
    if deep and nesting_exceeds(value, max_depth):
        raise TooDeepError(f"nested more than {max_depth} levels deep", 0)
    return value


def nesting_exceeds(value: Any, limit: int) -> bool:
    """True when objects and arrays nest more than `limit` levels deep (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def describe(exc: orjson.JSONDecodeError) -> str:
    """What is wrong with a body, for its 400: the sliced parser's message names the byte near it."""
    return exc.msg if isinstance(exc, SlicedJSONError) else f"{exc.msg} at position {exc.pos}"


class _Yajl(NamedTuple):
    items_coro: Callable[..., Any]
    sendable_list: Callable[[], list[Any]]
    error: type[Exception]


@functools.cache
def _backend() -> _Yajl | None:
    try:
        from ijson.backends import yajl2_c
        from ijson.common import JSONError
        from ijson.utils import sendable_list
    except ImportError:
        log.error(
            "ijson's C backend (yajl2_c) is not installed: large JSON bodies are parsed in one "
            "call and can hold the event loop; install ijson from a wheel for this platform"
        )
        return None
    return _Yajl(yajl2_c.items_coro, sendable_list, JSONError)


class _Known:
    """A large answer parsed ahead of its adapter (`known_answer`)."""

    __slots__ = ("error", "raw", "value")

    def __init__(self, raw: bytes, value: Any, error: orjson.JSONDecodeError | None) -> None:
        self.raw: bytes | None = raw
        self.value = value
        self.error = error


_known: _Known | None = None


async def known_answer(raw: bytes) -> contextlib.AbstractContextManager[None]:
    """Parses a large whole answer in slices; inside the returned context (synchronous code only),
    `answer_json(raw)` returns that result, once, instead of parsing `raw` again."""
    if len(raw) <= SLICE_ABOVE or _backend() is None:
        return contextlib.nullcontext()
    try:
        known = _Known(raw, await loads(raw), None)
    except orjson.JSONDecodeError as exc:
        known = _Known(raw, None, exc)
    return _knowing(known)


@contextlib.contextmanager
def _knowing(known: _Known) -> Iterator[None]:
    global _known
    _known = known
    try:
        yield
    finally:
        _known = None


def answer_json(raw: bytes) -> Any:
    """`orjson.loads(raw)` for a whole upstream answer, or what `known_answer` already made of it
    (the object itself, which the caller may change: a second call parses the bytes again)."""
    known = _known
    if known is not None and known.raw is raw:
        if known.error is not None:
            raise known.error
        known.raw = None
        return known.value
    return orjson.loads(raw)


class _SlicedParse:
    """One body through yajl, window by window (see the module's docstring)."""

    def __init__(self, backend: _Yajl, raw: bytes, max_depth: int) -> None:
        self._raw = raw
        self._max_depth = max_depth
        self._depth = 0
        self._error = backend.error
        self._out = backend.sendable_list()
        self._yajl = backend.items_coro(self._out, "", use_float=True)
        self._long: dict[str, str] = {}
        self._mark = "\0astra-long-" + os.urandom(8).hex() + "-"

    async def run(self) -> Any:
        raw, size = self._raw, len(self._raw)
        fed = seen = 0  # bytes given to yajl (or decoded here); bytes looked at
        while fed < size:
            seen = min(size, max(seen, fed) + WINDOW)
            chunk = raw[fed:seen]
            cut = self._complete(chunk, fed, final=seen == size)
            if seen - (fed + cut) > LONG_TOKEN:
                fed = await self._long_token(fed + cut)
                continue
            if cut:
                self._feed(chunk[:cut], fed)
                fed += cut
            await asyncio.sleep(0)
        try:
            self._yajl.close()
        except (ValueError, self._error) as exc:
            raise SlicedJSONError(_reason(exc), size) from None
        if not self._out:
            raise SlicedJSONError("no JSON value", size)
        return await self._restored(self._out[0])

    def _complete(self, chunk: bytes, at: int, *, final: bool) -> int:
        """How much of `chunk` (from byte `at`) is whole tokens: up to a string still open, or a
        number the window may have cut (the rest waits for the next window)."""
        end = _TOKENS.match(chunk).end()  # type: ignore[union-attr]
        if end < len(chunk) and final and len(chunk) - end <= LONG_TOKEN:
            raise SlicedJSONError("a string that does not end", at + end)
        if end < len(chunk) or final:
            return end
        return len(chunk.rstrip(_NUMBER_BYTES))

    def _feed(self, data: bytes, at: int) -> None:
        between = _STRING.sub(b'"', data)
        if between.translate(None, _BETWEEN_TOKENS):
            raise SlicedJSONError("a character JSON does not allow between values", at)
        self._check_depth(between.translate(_BRACKETS, _NOT_BRACKETS), at)
        if _SURROGATE_ESCAPE.search(data):
            _check_surrogates(data, at)
        self._send(data, at)

    def _send(self, data: bytes, at: int) -> None:
        try:
            self._yajl.send(data)
        except (ValueError, self._error) as exc:
            raise SlicedJSONError(_reason(exc), at) from None

    def _check_depth(self, brackets: bytes, at: int) -> None:
        """`brackets`: 2 for each opening bracket of the window, 0 for each closing one."""
        if not brackets:
            return
        if self._depth + brackets.count(2) > self._max_depth:
            deepest = self._depth + max(map(operator.sub, accumulate(brackets), count(1)))
            if deepest > self._max_depth:
                raise TooDeepError(f"nested more than {self._max_depth} levels deep", at)
        self._depth += len(brackets) - 2 * brackets.count(0)

    async def _long_token(self, start: int) -> int:
        """A string (or number) longer than `LONG_TOKEN` from `start`: returns where it ends."""
        raw = self._raw
        if raw[start : start + 1] != b'"':
            raise SlicedJSONError(f"a number longer than {LONG_TOKEN} bytes", start)
        value, end = await self._long_string(start + 1)
        placeholder = self._mark + str(len(self._long))
        self._long[placeholder] = value
        self._send(orjson.dumps(placeholder), start)
        return end

    async def _long_string(self, begin: int) -> tuple[str, int]:
        """The string whose body starts at `begin`, decoded by orjson a window at a time, and the
        index after its closing quote."""
        raw, size = self._raw, len(self._raw)
        parts: list[str] = []
        decoded = scanned = begin
        while True:
            window_end = min(size, scanned + WINDOW)
            scanned = _STRING_BODY.match(raw, scanned, window_end).end()  # type: ignore[union-attr]
            if scanned < window_end and raw[scanned] == 0x22:  # the closing quote
                parts.append(_decode(raw, decoded, scanned))
                return "".join(parts), scanned + 1
            if window_end == size:
                raise SlicedJSONError("a string that does not end", begin - 1)
            cut = _unit_boundary(raw, decoded, scanned)
            if cut > decoded:
                parts.append(_decode(raw, decoded, cut))
                decoded = cut
            elif scanned - decoded > 16:  # a unit that no more bytes complete: an invalid escape
                _decode(raw, decoded, scanned)
            await asyncio.sleep(0)

    async def _restored(self, value: Any) -> Any:
        """`value` with each placeholder replaced by its long string (keys too)."""
        long = self._long
        if not long:
            return value
        if isinstance(value, str):
            return long.get(value, value)
        stack, visited = [value], 0
        while stack:
            node = stack.pop()
            visited += 1
            if visited % _NODES_PER_TURN == 0:
                await asyncio.sleep(0)
            if isinstance(node, dict):
                _restore_dict(node, long)
                stack.extend(v for v in node.values() if isinstance(v, dict | list))
            else:
                for index, item in enumerate(node):
                    if isinstance(item, str) and item in long:
                        node[index] = long[item]
                    elif isinstance(item, dict | list):
                        stack.append(item)
        return value


def _restore_dict(node: dict[Any, Any], long: dict[str, str]) -> None:
    if any(key in long for key in node):
        items = list(node.items())
        node.clear()  # rebuilt in place: its parent keeps it; a repeated key keeps its first place
        node.update((long.get(k, k), v) for k, v in items)
    for key, item in node.items():
        if isinstance(item, str) and item in long:
            node[key] = long[item]


def _check_surrogates(data: bytes, at: int) -> None:
    """orjson's verdict on every string of `data` with a surrogate escape (yajl makes a lone one `?`)."""
    for match in _STRING.finditer(data):
        token = match.group()
        if _SURROGATE_ESCAPE.search(token):
            try:
                orjson.loads(token)
            except orjson.JSONDecodeError as exc:
                raise SlicedJSONError(exc.msg, at + match.start()) from None


def _unit_boundary(raw: bytes, start: int, end: int) -> int:
    """The last index in [start, end] that cuts no character, escape or surrogate pair."""
    cut = _UNITS.match(raw, start, end).end()  # type: ignore[union-attr]
    while cut > start and raw[cut] & 0xC0 == 0x80:  # inside a UTF-8 sequence: back to its start
        cut -= 1
    return cut


def _decode(raw: bytes, start: int, end: int) -> str:
    """Part of a string's body (`raw[start:end]`, whole units), decoded and checked by orjson."""
    try:
        value = orjson.loads(b'"' + raw[start:end] + b'"')
    except orjson.JSONDecodeError as exc:
        raise SlicedJSONError(exc.msg, start + max(0, exc.pos - 1)) from None
    assert isinstance(value, str)
    return value


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "a string that is not valid UTF-8"
    text = exc.args[0] if exc.args else str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return str(text).strip().splitlines()[0].rstrip(".") if str(text).strip() else type(exc).__name__
