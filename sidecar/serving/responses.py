"""Error answers in the shape of the API the caller used."""

from __future__ import annotations

import math
from collections.abc import Mapping

from aiohttp import web

from astra_sidecar.sidecar.protocols.base import Failure
from astra_sidecar.sidecar.protocols.codec import IngressCodec

_JSON = "application/json"


def error_response(
    codec: IngressCodec, failure: Failure, headers: Mapping[str, str] | None = None
) -> web.Response:
    """`failure` as `codec`'s API words it, with Retry-After on 429 and 503 when there is a hint."""
    out = dict(headers or {})
    if failure.retry_after_s is not None and failure.status in (429, 503):
        out["Retry-After"] = str(max(1, math.ceil(failure.retry_after_s)))
    return web.Response(status=failure.status, body=codec.error_body(failure), content_type=_JSON, headers=out)
