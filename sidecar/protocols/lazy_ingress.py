"""An ingress API whose codec module is imported at its first request (issue 15: the footprint).

`LazyIngress` is the `IngressCodec` the app registers for every API but OpenAI Chat Completions:
its name, wire and route table are declared without the codec (`ingress_routes`), and every other
method imports the real codec, once, and delegates to it. A route's own handler is named by
module and attribute (`handler`), imported the same way. So the first request of an API, an
error in its shape included, pays that import (docs/architecture.md, "What a sidecar loads");
a sidecar nobody calls in that API never loads it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from astra_sidecar.sidecar.protocols.base import Body, Failure
from astra_sidecar.sidecar.protocols.codec import (
    Handler,
    IngressCall,
    IngressCodec,
    RequestSize,
    Route,
    StreamEncoder,
)


class LazyIngress:
    """An `IngressCodec` delegating to `load()`'s codec, which it calls at its first use."""

    def __init__(
        self,
        name: str,
        load: Callable[[], IngressCodec],
        routes: Callable[[], Sequence[Route]],
        *,
        stream_content_type: str = "text/event-stream",
    ) -> None:
        self.name = name
        self.wire = name
        self.stream_content_type = stream_content_type
        self._load = load
        self._routes = routes
        self._codec: IngressCodec | None = None
        self._handlers: dict[tuple[str, str], Handler] = {}

    def codec(self) -> IngressCodec:
        """The real codec, imported on the first call."""
        if self._codec is None:
            self._codec = self._load()
        return self._codec

    def handler(self, module: str, attribute: str) -> Handler:
        """The route handler `module.attribute`, imported at its first request (one per name)."""
        key = (module, attribute)
        found = self._handlers.get(key)
        if found is None:
            found = self._handlers[key] = _deferred(module, attribute)
        return found

    def routes(self) -> Sequence[Route]:
        return self._routes()

    def parse(
        self, body: Any, route: Mapping[str, str], query: Mapping[str, str], headers: Mapping[str, str]
    ) -> IngressCall:
        return self.codec().parse(body, route, query, headers)

    def error_body(self, failure: Failure) -> bytes:
        return self.codec().error_body(failure)

    def stream_error(self, failure: Failure) -> bytes:
        return self.codec().stream_error(failure)

    def to_openai(self, call: IngressCall) -> Body:
        return self.codec().to_openai(call)

    def completion_from_openai(self, raw: bytes, call: IngressCall) -> bytes:
        return self.codec().completion_from_openai(raw, call)

    def stream_encoder(self, call: IngressCall) -> StreamEncoder:
        return self.codec().stream_encoder(call)

    def size(self, call: IngressCall) -> RequestSize:
        return self.codec().size(call)


def resolve(module: str, attribute: str) -> Handler:
    """The handler `module.attribute` (importing the module); `TypeError` if it is not callable."""
    handler = getattr(importlib.import_module(module), attribute)
    if not callable(handler):
        raise TypeError(f"{module}.{attribute} is not a route handler")
    resolved: Handler = handler
    return resolved


def _deferred(module: str, attribute: str) -> Handler:
    target: Handler | None = None

    async def deferred(request: web.Request) -> web.StreamResponse:
        nonlocal target
        if target is None:
            target = resolve(module, attribute)
        return await target(request)

    deferred.__qualname__ = f"deferred({module}.{attribute})"
    return deferred
