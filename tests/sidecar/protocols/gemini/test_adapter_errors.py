"""The Gemini adapter's failure classification, pure: Google RPC status bodies → `Failure`."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from astra_sidecar.sidecar.protocols.base import Failure
from astra_sidecar.sidecar.protocols.gemini.errors import parse_duration
from tests.fakes.gemini_upstream import (
    google_error,
)
from tests.sidecar.protocols.gemini.helpers import (
    ADAPTER,
    AI_STUDIO,
)

# --- error classification --------------------------------------------------------------------------


def classify(status: int, body: Any, headers: dict[str, str] | None = None) -> Failure:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return ADAPTER.classify_error(AI_STUDIO, status, headers or {}, raw)


def test_rate_limit_with_retry_info() -> None:
    body = google_error(
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded",
        retry_delay="38.6s",
        quota_id="GenerateRequestsPerMinutePerProject",
    )
    assert classify(429, body) == Failure(
        status=429,
        error_type="rate_limit_error",
        message="Quota exceeded",
        code="RESOURCE_EXHAUSTED",
        retryable=True,
        breaker_counts=True,
        retry_after_s=38.6,
    )


def test_daily_quota_is_not_retried() -> None:
    body = google_error(
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded",
        retry_delay="10s",
        quota_id="GenerateRequestsPerDayPerProjectPerModel",
    )
    assert classify(429, body) == Failure(
        status=429,
        error_type="insufficient_quota",
        message="Quota exceeded",
        code="insufficient_quota",
        retryable=False,
        breaker_counts=True,
        retry_after_s=10.0,
    )


@pytest.mark.parametrize(
    ("status", "rpc", "error_type"),
    [
        (503, "UNAVAILABLE", "server_error"),
        (500, "INTERNAL", "server_error"),
        (504, "DEADLINE_EXCEEDED", "timeout"),
    ],
)
def test_transient_statuses_are_retryable(status: int, rpc: str, error_type: str) -> None:
    failure = classify(status, google_error(status, rpc, "try later", wrapped=True))
    assert failure == Failure(
        status=status,
        error_type=error_type,
        message="try later",
        code=rpc,
        retryable=True,
        breaker_counts=True,
        retry_after_s=None,
    )


@pytest.mark.parametrize(
    ("status", "rpc", "error_type"),
    [
        (400, "INVALID_ARGUMENT", "invalid_request_error"),
        (400, "FAILED_PRECONDITION", "invalid_request_error"),
        (403, "PERMISSION_DENIED", "permission_error"),
        (404, "NOT_FOUND", "not_found_error"),
    ],
)
def test_client_side_statuses_are_not_retryable(status: int, rpc: str, error_type: str) -> None:
    failure = classify(status, google_error(status, rpc, "RESOURCE_EXHAUSTED UNAVAILABLE in the text"))
    assert failure == Failure(
        status=status,
        error_type=error_type,
        message="RESOURCE_EXHAUSTED UNAVAILABLE in the text",
        code=rpc,
        retryable=False,
        breaker_counts=False,
    )


def test_invalid_api_key_becomes_401() -> None:
    body = google_error(400, "INVALID_ARGUMENT", "API key not valid.", reason="API_KEY_INVALID")
    assert classify(400, body) == Failure(
        status=401,
        error_type="authentication_error",
        message="API key not valid.",
        code="API_KEY_INVALID",
    )


def test_non_google_body_falls_back_to_http_status() -> None:
    failure = classify(502, b"<html>Bad Gateway</html>", {"retry-after": "3"})
    assert failure == Failure(
        status=502,
        error_type="server_error",
        message="gemini returned HTTP 502",
        code="502",
        retryable=True,
        breaker_counts=True,
        retry_after_s=3.0,
    )
    assert classify(413, b"") == Failure(
        status=413, error_type="invalid_request_error", message="gemini returned HTTP 413", code="413"
    )


def test_error_without_rpc_status_uses_http_status() -> None:
    failure = classify(503, {"error": {"code": 503, "message": "busy"}})
    assert (failure.status, failure.code, failure.retryable) == (503, "503", True)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("38.6s", 38.6),
        ("1s", 1.0),
        ("0.5s", 0.5),
        ({"seconds": 2, "nanos": 500000000}, 2.5),
        ("soon", None),
        (7, None),
    ],
)
def test_parse_duration(value: Any, seconds: float | None) -> None:
    assert parse_duration(value) == seconds
