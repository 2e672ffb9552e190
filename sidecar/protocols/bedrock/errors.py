"""Classifying Bedrock failures by exception name, HTTP status and structured fields.

The name comes from `x-amzn-ErrorType` (text after `:` dropped), else the body's `__type` (after
`#`) or `code`; classification uses only the name, the status and structured fields
(`originalStatusCode`), never message text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from astra_sidecar.sidecar.protocols.base import Failure
from astra_sidecar.sidecar.protocols.openai import wire as shapes
from astra_sidecar.sidecar.protocols.openai.wire import Json


@dataclass(frozen=True, slots=True)
class _Kind:
    status: int
    error_type: str
    retryable: bool
    breaker_counts: bool
    code: str | None = None


#: Bedrock exception name → what the client sees (reference §4.5, §7.3). `None` code = the name.
ERROR_KINDS: Mapping[str, _Kind] = {
    "ValidationException": _Kind(400, "invalid_request_error", False, False),
    "AccessDeniedException": _Kind(403, "permission_error", False, False),
    "UnrecognizedClientException": _Kind(403, "permission_error", False, False),
    "InvalidSignatureException": _Kind(403, "permission_error", False, False),
    "ExpiredTokenException": _Kind(403, "permission_error", False, False),
    "ResourceNotFoundException": _Kind(404, "not_found_error", False, False),
    "ModelTimeoutException": _Kind(504, "timeout", False, True),
    "ThrottlingException": _Kind(429, "rate_limit_error", True, True),
    "ServiceQuotaExceededException": _Kind(429, "insufficient_quota", False, False, "insufficient_quota"),
    "ModelNotReadyException": _Kind(503, "server_error", True, True),
    "InternalServerException": _Kind(500, "server_error", True, True),
    "ServiceUnavailableException": _Kind(503, "server_error", True, True),
    "ModelErrorException": _Kind(502, "server_error", False, True),
    "ModelStreamErrorException": _Kind(502, "server_error", False, True),
}

#: Model-side exceptions carrying `originalStatusCode`: retryable when the model's own status is.
_ORIGINAL_STATUS_EXCEPTIONS = frozenset({"ModelErrorException", "ModelStreamErrorException"})


def error_name(headers: Mapping[str, str], body: Json) -> str | None:
    """The Bedrock exception name from `x-amzn-ErrorType` or the body (`__type` / `code`)."""
    for key, value in headers.items():
        if key.lower() == "x-amzn-errortype" and value:
            return value.split(":", 1)[0].strip() or None
    raw = body.get("__type") or body.get("code") or body.get("Code")
    if isinstance(raw, str) and raw:
        return raw.rsplit("#", 1)[-1].split(":", 1)[0] or None
    return None


def failure_for(name: str | None, status: int, body: Json, retry_after_s: float | None = None) -> Failure:
    """Classify a Bedrock error by exception name, falling back on the HTTP status."""
    message = body.get("message") or body.get("Message")
    if not isinstance(message, str) or not message:
        message = f"Bedrock returned {name or f'HTTP {status}'}"
    kind = ERROR_KINDS.get(name or "")
    if kind is None:
        transient = status in shapes.TRANSIENT_STATUSES
        out_status = shapes.client_status(status)
        kind = _Kind(out_status, shapes.openai_error_type(out_status), transient, transient)
    retryable = kind.retryable
    if name in _ORIGINAL_STATUS_EXCEPTIONS:
        original = body.get("originalStatusCode")
        retryable = isinstance(original, int) and (original == 429 or original >= 500)
    return Failure(
        status=kind.status,
        error_type=kind.error_type,
        message=message,
        code=kind.code or name,
        retryable=retryable,
        breaker_counts=kind.breaker_counts,
        retry_after_s=retry_after_s,
    )


def json_object(raw: bytes) -> Json:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def malformed(message: str, code: str = "bad_upstream_stream") -> Failure:
    """An answer or stream Bedrock should not have sent: retryable, counts against the breaker."""
    return Failure(502, "server_error", message, code=code, retryable=True, breaker_counts=True)


def classify(status: int, headers: Mapping[str, str], raw: bytes) -> Failure:
    """A failed HTTP answer (status, headers, body) → `Failure`."""
    body = json_object(raw)
    lowered = {k.lower(): v for k, v in headers.items()}
    return failure_for(error_name(headers, body), status, body, shapes.retry_after_seconds(lowered))
