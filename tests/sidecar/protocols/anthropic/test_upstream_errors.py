"""The Anthropic adapter's error classification (`astra_sidecar.sidecar.protocols.anthropic.upstream_errors`)."""

from __future__ import annotations

import orjson
import pytest

from astra_sidecar.sidecar.protocols.base import Failure
from tests.sidecar.protocols.anthropic.helpers import (
    ADAPTER,
    CLUSTER,
)

# --- errors -------------------------------------------------------------------------------------


def classify(
    status: int, error_type: str | None, message: str = "msg", headers: dict[str, str] | None = None
) -> Failure:
    raw = (
        orjson.dumps({"type": "error", "error": {"type": error_type, "message": message}})
        if error_type
        else b"<html>bad gateway</html>"
    )
    return ADAPTER.classify_error(CLUSTER, status, headers or {}, raw)


@pytest.mark.parametrize(
    ("status", "error_type", "out_status", "out_type", "code", "retryable", "breaker"),
    [
        (400, "invalid_request_error", 400, "invalid_request_error", "invalid_request_error", False, False),
        (401, "authentication_error", 401, "authentication_error", "authentication_error", False, False),
        (402, "billing_error", 429, "insufficient_quota", "insufficient_quota", False, False),
        (403, "permission_error", 403, "permission_error", "permission_error", False, False),
        (404, "not_found_error", 404, "not_found_error", "not_found_error", False, False),
        (413, "request_too_large", 413, "invalid_request_error", "request_too_large", False, False),
        (429, "rate_limit_error", 429, "rate_limit_error", "rate_limit_error", True, True),
        (500, "api_error", 500, "server_error", "api_error", True, True),
        (502, None, 502, "server_error", "upstream_http_502", True, True),
        (503, None, 503, "server_error", "upstream_http_503", True, True),
        (504, "timeout_error", 504, "timeout", "timeout_error", True, True),
        (529, "overloaded_error", 503, "server_error", "overloaded_error", True, True),
    ],
)
def test_error_classification(
    status: int,
    error_type: str | None,
    out_status: int,
    out_type: str,
    code: str,
    retryable: bool,
    breaker: bool,
) -> None:
    failure = classify(status, error_type, "upstream says no")
    assert failure.status == out_status
    assert failure.error_type == out_type
    assert failure.code == code
    assert failure.retryable is retryable
    assert failure.breaker_counts is breaker
    assert failure.message == (
        "upstream says no" if error_type else f"provider claude answered HTTP {status}"
    )


def test_classification_ignores_message_text() -> None:
    misleading = classify(400, "invalid_request_error", "Overloaded, please retry (rate limit 529)")
    assert (misleading.status, misleading.retryable, misleading.breaker_counts) == (400, False, False)
    reworded = classify(529, "overloaded_error", "Something else entirely")
    assert (reworded.status, reworded.retryable) == (503, True)


def test_structured_type_refines_the_status() -> None:
    overloaded = classify(500, "overloaded_error")
    assert (overloaded.status, overloaded.code, overloaded.retryable) == (503, "overloaded_error", True)
    billing = classify(400, "billing_error")
    assert (billing.status, billing.error_type, billing.retryable, billing.breaker_counts) == (
        429,
        "insufficient_quota",
        False,
        False,
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"Retry-After": "2.5"}, 2.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"Retry-After-Ms": "250"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert classify(429, "rate_limit_error", headers=headers).retry_after_s == expected
