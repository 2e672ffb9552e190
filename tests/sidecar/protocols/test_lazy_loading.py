"""The pieces that load protocol code when it is first used: `LazyIngress` (a codec and route
handlers imported at an API's first request) and the registry's `LoadedOnUse` tables.
(`tests/sidecar/test_footprint.py` checks what a served table actually imports.)"""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from astra_sidecar.sidecar.protocols.base import Body, Failure
from astra_sidecar.sidecar.protocols.codec import IngressCall, IngressCodec, RequestSize, Route
from astra_sidecar.sidecar.protocols.lazy_ingress import LazyIngress, resolve
from astra_sidecar.sidecar.protocols.registry import LoadedOnUse

FAKE_MODULE = "tests_fake_lazy_api"


class _Stream:
    def encode(self, payloads: list[bytes]) -> bytes:
        return b"".join(payloads)

    def close(self) -> bytes:
        return b"end"


class _Codec:
    name = "fake"
    wire = "fake"
    stream_content_type = "text/event-stream"

    def parse(
        self, body: Any, route: Mapping[str, str], query: Mapping[str, str], headers: Mapping[str, str]
    ) -> IngressCall:
        return IngressCall(agent_id=route["agent"], body=body, stream=False)

    def error_body(self, failure: Failure) -> bytes:
        return f"error {failure.status}".encode()

    def stream_error(self, failure: Failure) -> bytes:
        return f"event {failure.status}".encode()

    def to_openai(self, call: IngressCall) -> Body:
        return {"model": call.agent_id}

    def completion_from_openai(self, raw: bytes, call: IngressCall) -> bytes:
        return raw.upper()

    def stream_encoder(self, call: IngressCall) -> _Stream:
        return _Stream()

    def size(self, call: IngressCall) -> RequestSize:
        return RequestSize(conversation=call.body)

    def routes(self) -> list[Route]:
        return []


def _lazy() -> tuple[LazyIngress, list[int]]:
    loads: list[int] = []

    def load() -> IngressCodec:
        loads.append(1)
        return _Codec()

    return LazyIngress("fake", load, lambda: [Route("POST", "/v1/fake/{agent}")]), loads


def test_name_wire_and_routes_need_no_codec_and_every_other_call_loads_it_once() -> None:
    lazy, loads = _lazy()
    assert (lazy.name, lazy.wire, lazy.stream_content_type) == ("fake", "fake", "text/event-stream")
    assert lazy.routes() == [Route("POST", "/v1/fake/{agent}")]
    assert loads == []
    failure = Failure(404, "not_found_error", "no such route")
    assert lazy.error_body(failure) == b"error 404"
    call = lazy.parse({"x": 1}, {"agent": "a"}, {}, {})
    assert (lazy.to_openai(call), lazy.completion_from_openai(b"ok", call)) == ({"model": "a"}, b"OK")
    assert lazy.stream_error(failure) == b"event 404"
    assert lazy.stream_encoder(call).close() == b"end"
    assert lazy.size(call) == RequestSize(conversation={"x": 1})
    assert loads == [1]


async def test_a_deferred_handler_imports_its_module_at_its_first_request_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lazy, _ = _lazy()
    handler = lazy.handler(FAKE_MODULE, "answer")  # the module does not exist yet
    assert lazy.handler(FAKE_MODULE, "answer") is handler
    called: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        called.append(request.path)
        return web.Response(text="hi")

    module = types.ModuleType(FAKE_MODULE)
    module.answer = answer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, FAKE_MODULE, module)
    first = await handler(make_mocked_request("GET", "/one"))
    monkeypatch.delitem(sys.modules, FAKE_MODULE)  # resolved once: not looked up again
    second = await handler(make_mocked_request("GET", "/two"))
    assert (first.status, second.status, called) == (200, 200, ["/one", "/two"])


def test_resolve_refuses_what_is_no_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType(FAKE_MODULE)
    module.VALUE = 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, FAKE_MODULE, module)
    with pytest.raises(TypeError, match=r"tests_fake_lazy_api\.VALUE is not a route handler"):
        resolve(FAKE_MODULE, "VALUE")
    with pytest.raises(AttributeError):
        resolve(FAKE_MODULE, "missing")


def test_loaded_on_use_makes_each_value_at_its_first_lookup_and_keeps_it() -> None:
    made: list[str] = []

    def factory(name: str) -> Any:
        def make() -> list[str]:
            made.append(name)
            return [name]

        return make

    table: LoadedOnUse[list[str]] = LoadedOnUse({"a": factory("a"), "b": factory("b")})
    assert (sorted(table), len(table), made) == (["a", "b"], 2, [])
    first = table["a"]
    assert table["a"] is first and table.get("a") is first
    assert made == ["a"]
    assert table.get("unknown") is None and "unknown" not in table
    with pytest.raises(KeyError):
        table["unknown"]
    assert made == ["a"]
