"""The handlers of the Responses routes: `POST …/responses` through the request flow with this
request's store turn around it (`turn`), and `GET`/`DELETE …/responses/{response_id}` on the store.

The store of an app is built from its table's settings on first use, and again after a reload
changed them (`store.build_store`); a rebuilt in-process store starts empty.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from astra_sidecar.compiler.table import ResponsesStore
from astra_sidecar.compiler.table.fleet import RedisState
from astra_sidecar.sidecar.accesslog import AccessRecord
from astra_sidecar.sidecar.app_keys import STATE
from astra_sidecar.sidecar.errors import AstraError, ClientError
from astra_sidecar.sidecar.protocols.openai.ingress import error_payload
from astra_sidecar.sidecar.protocols.responses import turn as turns
from astra_sidecar.sidecar.protocols.responses.store import ResponseStore, StoreUnavailableError, build_store
from astra_sidecar.sidecar.serving.common import read_json, request_id

Json = dict[str, Any]
Serve = Callable[[web.Request], Awaitable[web.StreamResponse]]

_Config = tuple[ResponsesStore, RedisState | None]
_STORES: weakref.WeakKeyDictionary[Any, tuple[_Config, ResponseStore | None]] = weakref.WeakKeyDictionary()


def store_for(request: web.Request) -> ResponseStore | None:
    state = request.app[STATE]
    settings = state.runtime.table.settings
    config = (settings.responses_store, settings.redis)
    held = _STORES.get(state)
    if held is None or held[0] != config:
        lost = state.shared.metrics.fleet.background_failures.labels("response_store")
        held = (config, build_store(state.runtime.table, state.shared.env, state.shared.clock, lost))
        _STORES[state] = held
    return held[1]


async def _previous(request: web.Request, turn: turns.Turn) -> None:
    """Looks the body's `previous_response_id` up (a body the flow will refuse is left to it)."""
    if turn.store is None:
        return
    try:
        body = await read_json(request, request.app[STATE].runtime.table.settings.max_body_bytes)
    except ClientError:
        return
    previous_id = body.get("previous_response_id") if isinstance(body, dict) else None
    if not isinstance(previous_id, str) or not previous_id:
        return
    try:
        turn.previous = await turn.store.get(previous_id)
    except StoreUnavailableError:
        turn.unavailable = True


async def _keep(turn: turns.Turn, response: web.StreamResponse) -> None:
    if not turn.keep or turn.store is None or response.status != 200:
        return
    answer = turn.answer
    if answer is None and isinstance(response, web.Response) and isinstance(response.body, bytes):
        loaded = orjson.loads(response.body)
        answer = loaded if isinstance(loaded, dict) else None
    if answer is not None and isinstance(answer.get("id"), str) and answer.get("status") != "failed":
        await turn.store.put(answer["id"], turn.entry(answer))


def create_handler(serve: Serve) -> Serve:
    """`POST …/responses`: `serve` (the request flow) inside this request's store turn."""

    async def create(request: web.Request) -> web.StreamResponse:
        turn = turns.Turn(store_for(request))
        await _previous(request, turn)
        token = turns.enter(turn)
        try:
            response = await serve(request)
        finally:
            turns.leave(token)
        await _keep(turn, response)
        return response

    return create


def _json(status: int, body: Json, record: AccessRecord, request: web.Request) -> web.Response:
    record.status = status
    record.emit(request.app[STATE].shared.access_sink)
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json",
                        headers={"x-request-id": record.request_id})  # fmt: skip


def _not_found(response_id: str, record: AccessRecord, request: web.Request) -> web.Response:
    failure = ClientError(404, f"Response with id '{response_id}' not found.", param="response_id",
                          code="response_not_found").failure  # fmt: skip
    record.error_code = failure.code
    return _json(404, orjson.loads(error_payload(failure)), record, request)


async def stored(request: web.Request) -> web.Response:
    """`GET` (the stored Response object) or `DELETE` (forget it) `…/responses/{response_id}`."""
    record = AccessRecord(request_id=request_id(request), route="responses", method=request.method,
                          path=request.path, agent=request.match_info.get("agent"))  # fmt: skip
    response_id = request.match_info["response_id"]
    store = store_for(request)
    try:
        if store is None:
            raise ClientError(404, "the response store is turned off (settings.responses.store.maxEntries: 0)",
                              code="response_not_found")  # fmt: skip
        if request.method == "DELETE":
            if not await store.delete(response_id):
                return _not_found(response_id, record, request)
            return _json(200, {"id": response_id, "object": "response", "deleted": True}, record, request)
        entry = await store.get(response_id)
    except StoreUnavailableError:
        entry, failure = (
            None,
            ClientError(
                503, "the response store is unavailable; try again", code="store_unavailable"
            ).failure,
        )
        record.error_code = failure.code
        return _json(503, orjson.loads(error_payload(failure)), record, request)
    except AstraError as exc:
        record.error_code = exc.failure.code
        return _json(exc.failure.status, orjson.loads(error_payload(exc.failure)), record, request)
    if entry is None or not isinstance(entry.get("response"), dict):
        return _not_found(response_id, record, request)
    return _json(200, entry["response"], record, request)
