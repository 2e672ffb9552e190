"""The aiohttp application: routes, the guard middleware, and the lifecycle of shared state."""

from __future__ import annotations

import hmac
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from compiler.table import RoutingTable
from sidecar.accesslog import AccessSink
from sidecar.app_keys import STATE
from sidecar.auth.sources import presented_key
from sidecar.clock import Clock, MonotonicClock
from sidecar.metrics import Metrics
from sidecar.protocols.anthropic import ingress as anthropic
from sidecar.protocols.base import Failure
from sidecar.protocols.gemini import ingress as gemini
from sidecar.protocols.openai import ingress as openai
from sidecar.runtime import CredentialFactory, SharedState
from sidecar.serving.flow import error_response
from sidecar.state import AppState

log = logging.getLogger("astra.sidecar")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


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
    app = web.Application(
        middlewares=[_guard(_inbound_token(table, shared.env))],
        client_max_size=table.settings.max_body_bytes,
    )
    app[STATE] = state
    openai.add_routes(app)
    anthropic.add_routes(app)
    gemini.add_routes(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.cleanup_ctx.append(_shared_lifecycle)
    return app


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


def _guard(token: str | None) -> Middleware:
    """Inbound auth (when configured), JSON errors for unknown routes, and no traceback ever."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is not None and request.path not in _OPS_PATHS:
            presented = _presented_token(request)
            if not token or not hmac.compare_digest(presented.encode(), token.encode()):
                return _json_error(
                    request,
                    Failure(
                        401, "authentication_error", "missing or wrong sidecar token", code="invalid_api_key"
                    ),
                )
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _json_error(
                request, Failure(exc.status, _http_error_type(exc.status), exc.reason, code=None)
            )
        except Exception:
            log.exception("unexpected error serving %s %s", request.method, request.path)
            return _json_error(
                request, Failure(500, "server_error", "internal error in the sidecar", code="internal_error")
            )

    return guard


def _json_error(request: web.Request, failure: Failure) -> web.Response:
    """An error in the shape of the API the caller used (by route prefix; OpenAI's otherwise)."""
    path = request.path
    if path.startswith("/v1/anthropic/"):
        return error_response(anthropic.CODEC, failure)
    if path.startswith("/v1/gemini/"):
        return error_response(gemini.CODEC, failure)
    return error_response(openai.CODEC, failure)


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
