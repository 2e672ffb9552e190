"""What every ingress route does the same way: read the body, name the request, guard the door."""

from __future__ import annotations

import os
import re
from typing import Any

import orjson
from aiohttp import web

from sidecar.errors import ClientError

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id(request: web.Request) -> str:
    """The caller's X-Request-Id when it is a sane token, else a fresh one."""
    given = request.headers.get("x-request-id", "")
    return given if given and _SAFE_REQUEST_ID.match(given) else os.urandom(12).hex()


async def read_json(request: web.Request, max_bytes: int) -> Any:
    """The parsed JSON body, or a ClientError (413 too large, 400 not JSON)."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise ClientError(413, f"request body is larger than {max_bytes} bytes", code="request_too_large")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise ClientError(
            413, f"request body is larger than {max_bytes} bytes", code="request_too_large"
        ) from exc
    if len(raw) > max_bytes:
        raise ClientError(413, f"request body is larger than {max_bytes} bytes", code="request_too_large")
    if not raw:
        raise ClientError(400, "request body is empty; send a JSON object", code="invalid_json")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ClientError(
            400, f"request body is not valid JSON: {exc.msg} at position {exc.pos}", code="invalid_json"
        ) from exc
