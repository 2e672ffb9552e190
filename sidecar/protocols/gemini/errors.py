"""Classifying Gemini failures: Google RPC status bodies → `Failure`.

Bodies are `{"error": {code, message, status, details}}`, sometimes in a one-element array.
RESOURCE_EXHAUSTED / UNAVAILABLE / INTERNAL / DEADLINE_EXCEEDED are retryable and count against
the breaker, except a RESOURCE_EXHAUSTED whose `QuotaFailure` names a per-day quota (`quotaId`
contains `PerDay`: waiting does not help → 429 `insufficient_quota`, not retried, counts against
the breaker so the fallback takes over). `RetryInfo.retryDelay` (`"38.6s"`) → retry-after.
`ErrorInfo.reason` `API_KEY_INVALID` (sent as 400) → 401. Decided from status fields only, never
from message text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from astra_sidecar.sidecar.protocols.base import Failure
from astra_sidecar.sidecar.protocols.gemini.wire import HTTP_STATUS_BY_RPC, RPC_TYPE_PREFIX
from astra_sidecar.sidecar.protocols.openai.wire import (
    TRANSIENT_STATUSES,
    Json,
    client_status,
    openai_error_type,
    retry_after_seconds,
)

_RETRYABLE_RPC = frozenset({"RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED"})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)s\s*$")


def google_error(data: Any) -> Json | None:
    """The `error` object of a Google RPC status body (bare or in a one-element array)."""
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else None


def _details(error: Json, kind: str) -> list[Json]:
    details = error.get("details")
    if not isinstance(details, list):
        return []
    return [d for d in details if isinstance(d, dict) and d.get("@type") == RPC_TYPE_PREFIX + kind]


def parse_duration(value: Any) -> float | None:
    """A protobuf Duration in JSON (`"38.6s"`) or as `{seconds, nanos}`."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        return float(match.group(1)) if match else None
    if isinstance(value, dict):
        seconds, nanos = value.get("seconds", 0), value.get("nanos", 0)
        try:
            return float(seconds) + float(nanos) / 1e9
        except (TypeError, ValueError):
            return None
    return None


def _retry_delay(error: Json) -> float | None:
    for info in _details(error, "RetryInfo"):
        delay = parse_duration(info.get("retryDelay"))
        if delay is not None:
            return delay
    return None


def _daily_quota(error: Json) -> bool:
    for failure in _details(error, "QuotaFailure"):
        for violation in failure.get("violations") or ():
            quota_id = violation.get("quotaId") if isinstance(violation, dict) else None
            if isinstance(quota_id, str) and "PerDay" in quota_id:
                return True
    return False


def _error_reason(error: Json) -> str | None:
    for info in _details(error, "ErrorInfo"):
        reason = info.get("reason")
        if isinstance(reason, str):
            return reason
    return None


def _upstream_status(http_status: int, error: Json, rpc: str | None) -> int:
    if http_status >= 400:
        return http_status
    code = error.get("code")
    if isinstance(code, int) and 400 <= code <= 599:
        return code
    return HTTP_STATUS_BY_RPC.get(rpc or "", 502)


def failure_from_error(http_status: int, error: Json, headers: Mapping[str, str]) -> Failure:
    rpc = error.get("status") if isinstance(error.get("status"), str) else None
    status = _upstream_status(http_status, error, rpc)
    out_status = client_status(status)
    message = error.get("message")
    message = message if isinstance(message, str) and message else f"gemini returned HTTP {status}"
    retry_after = _retry_delay(error)
    if retry_after is None:
        retry_after = retry_after_seconds(headers)
    if rpc == "RESOURCE_EXHAUSTED" and _daily_quota(error):
        return Failure(
            status=429,
            error_type="insufficient_quota",
            message=message,
            code="insufficient_quota",
            retryable=False,
            breaker_counts=True,
            retry_after_s=retry_after,
        )
    if _error_reason(error) == "API_KEY_INVALID":
        out_status, rpc = 401, "API_KEY_INVALID"
    transient = rpc in _RETRYABLE_RPC if rpc is not None else status in TRANSIENT_STATUSES
    return Failure(
        status=out_status,
        error_type=openai_error_type(out_status),
        message=message,
        code=rpc if rpc is not None else str(status),
        retryable=transient,
        breaker_counts=transient,
        retry_after_s=retry_after,
    )


def classify(http_status: int, headers: Mapping[str, str], raw: bytes) -> Failure:
    try:
        error = google_error(orjson.loads(raw))
    except orjson.JSONDecodeError:
        error = None
    if error is not None:
        return failure_from_error(http_status, error, headers)
    out_status = client_status(http_status)
    transient = http_status in TRANSIENT_STATUSES
    return Failure(
        status=out_status,
        error_type=openai_error_type(out_status),
        message=f"gemini returned HTTP {http_status}",
        code=str(http_status),
        retryable=transient,
        breaker_counts=transient,
        retry_after_s=retry_after_seconds(headers),
    )
