"""Failures as Google words them, for callers of the Gemini ingress.

`{"error": {"code", "message", "status", "details"}}`: `status` is the upstream Gemini RPC status
when the failure carries one, else the one for the HTTP status (`wire.RPC_BY_HTTP_STATUS`; other
4xx → INVALID_ARGUMENT, other 5xx → INTERNAL). `details` carry the sidecar's own error code
(`ErrorInfo.reason`, domain ``astra-sidecar``), the offending field (`BadRequest.fieldViolations`)
and the retry hint (`RetryInfo.retryDelay`).
"""

from __future__ import annotations

from typing import Any

from astra_sidecar.sidecar.protocols.base import Failure
from astra_sidecar.sidecar.protocols.gemini.wire import RPC_BY_HTTP_STATUS, RPC_STATUSES, RPC_TYPE_PREFIX

ERROR_DOMAIN = "astra-sidecar"


def rpc_status(failure: Failure) -> str:
    if failure.code in RPC_STATUSES:
        return str(failure.code)
    return RPC_BY_HTTP_STATUS.get(failure.status, "INVALID_ARGUMENT" if failure.status < 500 else "INTERNAL")


def _details(failure: Failure) -> list[dict[str, Any]]:
    details: list[dict[str, Any]] = []
    if failure.code and failure.code not in RPC_STATUSES and not failure.code.isdigit():
        details.append(
            {"@type": RPC_TYPE_PREFIX + "ErrorInfo", "reason": failure.code, "domain": ERROR_DOMAIN}
        )
    if failure.param:
        violation = {"field": failure.param, "description": failure.message}
        details.append({"@type": RPC_TYPE_PREFIX + "BadRequest", "fieldViolations": [violation]})
    if failure.retry_after_s is not None:
        details.append({"@type": RPC_TYPE_PREFIX + "RetryInfo", "retryDelay": f"{failure.retry_after_s:g}s"})
    return details


def error_object(failure: Failure) -> dict[str, Any]:
    """Google's RPC status body for a failure."""
    error: dict[str, Any] = {
        "code": failure.status,
        "message": failure.message,
        "status": rpc_status(failure),
    }
    details = _details(failure)
    if details:
        error["details"] = details
    return {"error": error}
