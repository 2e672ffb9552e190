"""What every ingress route does the same way: read the body, name the request, guard the door."""

from __future__ import annotations

import asyncio
import os
import re
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from astra_sidecar.sidecar import large_json
from astra_sidecar.sidecar.accesslog import AccessRecord
from astra_sidecar.sidecar.app_keys import STATE
from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.serving import admission

if TYPE_CHECKING:
    from astra_sidecar.sidecar.fleet.quota import Ticket
    from astra_sidecar.sidecar.resilience.plan import Outcome

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

#: Deepest nesting of objects and arrays accepted in a body. Real requests stay far below (tool
#: schemas nest a few dozen levels at most); JSON nested past ~250 levels cannot be re-encoded
#: (orjson) and deep recursion would fail later, so such bodies are refused at the door.
MAX_NESTING = 100


def request_id(request: web.Request) -> str:
    """The caller's X-Request-Id when it is a sane token (1-128 of `A-Z a-z 0-9 . _ : -`), else a
    fresh one: what reaches the access line and the answer's header is never the caller's raw text."""
    given = request.headers.get("x-request-id", "")
    return given if given and _SAFE_REQUEST_ID.match(given) else os.urandom(12).hex()


async def _read_within(request: web.Request, timeout_s: float) -> bytes:
    if request.content.is_eof():  # it came with its head (most bodies do): nothing can wait
        return await request.read()
    async with asyncio.timeout(timeout_s):
        return await request.read()


async def read_json(request: web.Request, max_bytes: int) -> Any:
    """The parsed JSON body, or a ClientError (413 too large, 400 not JSON, 408 slower than
    `limits.clientBodyTimeoutMs`)."""
    value, _ = await read_json_sized(request, max_bytes)
    return value


async def read_json_sized(request: web.Request, max_bytes: int) -> tuple[Any, int]:
    """`read_json`, and the body's size as read (after any Content-Encoding)."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise ClientError(413, f"request body is larger than {max_bytes} bytes", code="request_too_large")
    timeout_ms = request.app[STATE].runtime.limits.client_body_timeout_ms
    try:
        raw = await _read_within(request, timeout_ms / 1000.0)
    except TimeoutError as exc:
        raise ClientError(
            408,
            f"request body not received within {timeout_ms} ms (clientBodyTimeoutMs)",
            code="request_timeout",
        ) from exc
    except web.HTTPRequestEntityTooLarge as exc:
        raise ClientError(
            413, f"request body is larger than {max_bytes} bytes", code="request_too_large"
        ) from exc
    except web.RequestPayloadError as exc:  # e.g. `Content-Encoding: gzip` on a body that is not
        raise ClientError(
            400, "request body cannot be decoded as its Content-Encoding says", code="invalid_body"
        ) from exc
    if len(raw) > max_bytes:
        raise ClientError(413, f"request body is larger than {max_bytes} bytes", code="request_too_large")
    if not raw:
        raise ClientError(400, "request body is empty; send a JSON object", code="invalid_json")
    try:
        # A large body is parsed in slices, with turns of the loop between them (large_json).
        return await large_json.loads(raw, max_depth=MAX_NESTING), len(raw)
    except large_json.TooDeepError as exc:
        raise ClientError(
            400, f"request body is nested more than {MAX_NESTING} levels deep", code="invalid_json"
        ) from exc
    except orjson.JSONDecodeError as exc:
        raise ClientError(
            400, f"request body is not valid JSON: {large_json.describe(exc)}", code="invalid_json"
        ) from exc


def outcome_headers(outcome: Outcome[Any] | None) -> dict[str, str]:
    """What an answer says of its plan: `x-astra-attempts` (requests sent upstream), who served
    (`x-astra-provider`) and, when that plan entry is a pool, which member (`x-astra-pool-member`)."""
    headers = {"x-astra-attempts": str(outcome.attempts if outcome else 0)}
    if outcome is not None and outcome.served_by is not None:
        headers["x-astra-provider"] = outcome.served_by.cluster.provider
        if outcome.member is not None:
            headers["x-astra-pool-member"] = outcome.member
    return headers


def begin_request(request: web.Request, route: str) -> tuple[AccessRecord, float]:
    """An agent request's access record (naming the path's agent, so a refused body still names
    it) and its start on the sidecar's clock; the request counts as in flight from here."""
    state = request.app[STATE]
    record = AccessRecord(request_id=request_id(request), route=route, method=request.method, path=request.path)
    record.agent = request.match_info.get("agent")
    state.enter()
    return record, state.shared.clock.now()


def end_request(
    request: web.Request, record: AccessRecord, started: float, agent_id: str | None, ticket: Ticket | None
) -> None:
    """The end of an agent request, whatever happened: its latency, the quota settlement and the
    request metrics (when an agent was found), its one access line, its admission slot."""
    state = request.app[STATE]
    shared = state.shared
    elapsed = max(0.0, shared.clock.now() - started)
    record.latency_ms = round(elapsed * 1000.0, 3)
    if agent_id is not None:
        shared.quotas.settle(ticket, record.prompt_tokens, record.completion_tokens)
        shared.metrics.request_seconds.labels(agent_id).observe(elapsed)
        shared.metrics.requests.labels(agent_id, record.provider or "none", str(record.status)).inc()
    record.emit(shared.access_sink)
    admission.release(request, record)
    state.leave()
