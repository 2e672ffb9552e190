"""The aiohttp application: routes, the guard middleware, and the lifecycle of shared state."""

from __future__ import annotations

import hmac
import logging
import random
from collections.abc import AsyncIterator, Mapping

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from astra_sidecar.compiler.table import RoutingTable
from astra_sidecar.sidecar.accesslog import ERROR_CODE_KEY, AccessRecord, AccessSink
from astra_sidecar.sidecar.app_keys import STATE
from astra_sidecar.sidecar.auth.sources import presented_key
from astra_sidecar.sidecar.clock import Clock, MonotonicClock
from astra_sidecar.sidecar.metrics import Metrics
from astra_sidecar.sidecar.protocols.base import Failure
from astra_sidecar.sidecar.protocols.codec import Handler, IngressCodec
from astra_sidecar.sidecar.protocols.openai.ingress import CODEC as OPENAI
from astra_sidecar.sidecar.protocols.registry import INGRESS
from astra_sidecar.sidecar.runtime import CredentialFactory, SharedState
from astra_sidecar.sidecar.serving.admission import ADMISSION, Admission
from astra_sidecar.sidecar.serving.common import request_id
from astra_sidecar.sidecar.serving.embeddings import OWN_ACCESS_LINE
from astra_sidecar.sidecar.serving.flow import serve
from astra_sidecar.sidecar.serving.responses import error_response
from astra_sidecar.sidecar.state import AppState

log = logging.getLogger("astra.sidecar")

#: Open without the inbound token (docs/hardening.md, "Auth"): liveness, readiness (table hash,
#: agent count, draining) and, unless `inboundAuth.protectMetrics`, the Prometheus metrics
#: (agent and provider names, counts, latencies; never keys, contents or client-chosen strings).
_OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def _open_paths(table: RoutingTable) -> frozenset[str]:
    return _OPS_PATHS - {"/metrics"} if table.settings.protect_metrics else _OPS_PATHS


def create_app(
    table: RoutingTable,
    *,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    source_path: str | None = None,
    credential_factory: CredentialFactory | None = None,
    access_sink: AccessSink | None = None,
) -> web.Application:
    """The sidecar app serving `table`. `env`, `clock`, `rng` and where access lines go
    (`access_sink`, default: the `astra.access` logger) are injectable."""
    shared = SharedState(
        metrics=Metrics(),
        clock=clock or MonotonicClock(),
        env=env,
        rng=rng,
        credential_factory=credential_factory,
        access_sink=access_sink,
    )
    state = AppState(table, shared, source_path)
    codecs: dict[web.AbstractResource, IngressCodec] = {}
    app = web.Application(
        middlewares=[_guard(_inbound_token(table, shared.env), codecs, _open_paths(table))],
        client_max_size=table.settings.max_body_bytes,
    )
    app[STATE] = state
    app[ADMISSION] = Admission()
    for codec in INGRESS:
        _add_ingress(app, codec, codecs)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.cleanup_ctx.append(_shared_lifecycle)
    return app


def _add_ingress(app: web.Application, codec: IngressCodec, codecs: dict[web.AbstractResource, IngressCodec]) -> None:
    """Registers an API's routes; each resource remembers its codec, for errors in its shape."""

    async def call(request: web.Request) -> web.StreamResponse:
        return await serve(request, codec)

    for route in codec.routes():
        handler = _logged(codec, route.handler) if route.handler is not None else call
        # add_get also answers HEAD, as aiohttp's GET routes do by default.
        if route.method == "GET":
            added = app.router.add_get(route.path, handler)
        else:
            added = app.router.add_route(route.method, route.path, handler)
        codecs[added.resource] = codec  # type: ignore[index]


def _logged(codec: IngressCodec, handler: Handler) -> Handler:
    """A route's own handler (model lists, probes, count_tokens, 404s in the API's shape), writing
    the request's one access line: method, path, the path's agent, status and error code (the
    flow writes its own; an HTTP error raised here is written by the guard)."""

    async def logged(request: web.Request) -> web.StreamResponse:
        shared = request.app[STATE].shared
        started = shared.clock.now()
        response = await handler(request)
        if response.get(OWN_ACCESS_LINE):  # embeddings: the flow wrote it, with provider and tokens
            return response
        record = AccessRecord(
            request_id=request_id(request), route=codec.name, method=request.method, path=request.path,
            agent=request.match_info.get("agent"), status=response.status, error_code=response.get(ERROR_CODE_KEY),
            latency_ms=round(max(0.0, shared.clock.now() - started) * 1000.0, 3),
        )  # fmt: skip
        record.emit(shared.access_sink)
        return response

    return logged


async def _shared_lifecycle(app: web.Application) -> AsyncIterator[None]:
    yield
    state = app[STATE]
    for cluster in state.runtime.clusters.values():
        await cluster.credentials.close()
    await state.shared.close()


def _inbound_token(table: RoutingTable, env: Mapping[str, str]) -> str | None:
    name = table.settings.inbound_token_env
    if not name:
        return None
    token = env.get(name)
    if not token:
        log.warning("inbound auth is configured but %s is not set: every request will be refused", name)
        return ""
    return token


def _presented_token(request: web.Request) -> str:
    """The sidecar token, from `x-astra-token` or wherever the caller's SDK puts its API key
    (Authorization: Bearer, x-api-key, x-goog-api-key, `?key=`). With `credentials: passthrough`
    those carry the provider key, so such callers send the sidecar token as `x-astra-token`."""
    headers = request.headers
    return headers.get("x-astra-token") or presented_key(headers) or request.query.get("key", "")


def _guard(
    token: str | None, codecs: Mapping[web.AbstractResource, IngressCodec], open_paths: frozenset[str] = _OPS_PATHS
) -> Middleware:
    """Inbound auth (when configured), JSON errors for unknown routes, and no traceback ever."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is not None and request.path not in open_paths:
            presented = _presented_token(request)
            if not token or not hmac.compare_digest(presented.encode(), token.encode()):
                return error_response(
                    _codec_of(request, codecs),
                    Failure(401, "authentication_error", "missing or wrong sidecar token", code="invalid_api_key"),
                )
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = {404: "route_not_found", 405: "method_not_allowed"}.get(exc.status)
            _unrouted_access_line(request, exc.status, code)
            message = _http_error_message(request, exc)
            failure = Failure(exc.status, _http_error_type(exc.status), message, code=code)
            return error_response(_codec_of(request, codecs), failure, _allow_header(exc))
        except Exception:
            log.exception("unexpected error serving %s %s", request.method, request.path)
            return error_response(
                _codec_of(request, codecs),
                Failure(500, "server_error", "internal error in the sidecar", code="internal_error"),
            )

    return guard


def _unrouted_access_line(request: web.Request, status: int, code: str | None) -> None:
    """The one access line of a request no route served (method and path, never the query)."""
    record = AccessRecord(
        request_id=request_id(request), route="none", method=request.method, path=request.path,
        status=status, error_code=code,
    )  # fmt: skip
    record.emit(request.app[STATE].shared.access_sink)


def _codec_of(request: web.Request, codecs: Mapping[web.AbstractResource, IngressCodec]) -> IngressCodec:
    """The API of the route that matched (OpenAI's when none did)."""
    resource = request.match_info.route.resource
    return codecs.get(resource, OPENAI) if resource is not None else OPENAI


def _http_error_message(request: web.Request, exc: web.HTTPException) -> str:
    """What an HTTP error of aiohttp's router says: the route, named by method and path."""
    if exc.status == 404:
        return f"no such route: {request.method} {request.path}"
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return f"method {request.method} is not allowed on {request.path} (allowed: {allowed})"
    return exc.reason


def _allow_header(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}


def _http_error_type(status: int) -> str:
    return "not_found_error" if status == 404 else "invalid_request_error"


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    table = state.runtime.table
    body = {
        "status": "draining" if state.draining else "ready",
        "tableHash": table.hash,
        "schemaVersion": table.schema_version,
        "sourceSha256": table.source_sha256,
        "agents": len(table.agents),
    }
    return web.Response(
        status=503 if state.draining else 200, body=orjson.dumps(body), content_type="application/json"
    )


async def metrics(request: web.Request) -> web.Response:
    body = request.app[STATE].shared.metrics.render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
