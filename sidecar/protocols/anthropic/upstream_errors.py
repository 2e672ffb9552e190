"""Anthropic error answers → the `Failure` the sidecar acts on.

Body `{"type": "error", "error": {"type": ..., "message": ...}}`; classified by HTTP status and
the structured `error.type` (never the message text). 529 overloaded → 503; billing_error →
429 `insufficient_quota` (not retryable); retryable: 429, 500, 502, 503, 504, 529; the breaker
counts 429 and 5xx (provider-side); `retry-after-ms` / `retry-after` become `retry_after_s`.
An error object without its status (inside a 200, or an `event: error` mid-stream) is classified
by the status its type stands for (`wire.ERROR_TYPE_STATUS`, else 500).

Reference: https://docs.anthropic.com/en/api/errors
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from astra_sidecar.sidecar.protocols.anthropic.wire import ERROR_TYPE_STATUS
from astra_sidecar.sidecar.protocols.base import Failure
from astra_sidecar.sidecar.protocols.openai import wire as shapes

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504, 529})


def error_fields(body: Any) -> tuple[str | None, str | None]:
    """The `error.type` and `error.message` of an error body, where they are strings."""
    if not isinstance(body, dict):
        return None, None
    error = body.get("error")
    if not isinstance(error, dict):
        return None, None
    kind, message = error.get("type"), error.get("message")
    return (kind if isinstance(kind, str) else None), (message if isinstance(message, str) else None)


def classify(status: int, headers: Mapping[str, str], body: Any) -> Failure:
    """A Failure from an upstream status, its headers and its decoded body (any JSON or None)."""
    kind, message = error_fields(body)
    if kind == "overloaded_error":
        status = 529
    message = message or f"provider claude answered HTTP {status}"
    lowered = {name.lower(): value for name, value in headers.items()}
    if kind == "billing_error":
        return Failure(429, "insufficient_quota", message, code="insufficient_quota")
    client = shapes.client_status(status)
    provider_side = status == 429 or status >= 500
    return Failure(
        status=client,
        error_type=shapes.openai_error_type(client),
        message=message,
        code=kind or f"upstream_http_{status}",
        retryable=status in RETRYABLE_STATUSES,
        breaker_counts=provider_side,
        retry_after_s=shapes.retry_after_seconds(lowered),
    )


def classify_raw(status: int, headers: Mapping[str, str], raw: bytes) -> Failure:
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    return classify(status, headers, body)


def error_object_failure(body: Any) -> Failure:
    """The Failure for an error object that came without its HTTP status."""
    kind, _ = error_fields(body)
    return classify(ERROR_TYPE_STATUS.get(kind or "", 500), {}, body)
