"""The Bedrock adapter's error classification: Bedrock exception names (header or body) to status,
type, retryability and breaker counting."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from astra_sidecar.sidecar.protocols.base import Failure
from tests.sidecar.protocols.bedrock.helpers import ADAPTER, CLUSTER


def classify(status: int, error_type: str | None, body: dict[str, Any], **headers: str) -> Failure:
    all_headers = dict(headers)
    if error_type is not None:
        all_headers["x-amzn-ErrorType"] = f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"
    return ADAPTER.classify_error(CLUSTER, status, all_headers, orjson.dumps(body))


@pytest.mark.parametrize(
    ("status", "name", "expected"),
    [
        (429, "ThrottlingException", (429, "rate_limit_error", "ThrottlingException", True, True)),
        (
            503,
            "ServiceUnavailableException",
            (503, "server_error", "ServiceUnavailableException", True, True),
        ),
        (429, "ModelNotReadyException", (503, "server_error", "ModelNotReadyException", True, True)),
        (500, "InternalServerException", (500, "server_error", "InternalServerException", True, True)),
        (408, "ModelTimeoutException", (504, "timeout", "ModelTimeoutException", False, True)),
        (400, "ValidationException", (400, "invalid_request_error", "ValidationException", False, False)),
        (
            400,
            "ServiceQuotaExceededException",
            (429, "insufficient_quota", "insufficient_quota", False, False),
        ),
        (403, "AccessDeniedException", (403, "permission_error", "AccessDeniedException", False, False)),
        (
            404,
            "ResourceNotFoundException",
            (404, "not_found_error", "ResourceNotFoundException", False, False),
        ),
        (424, "ModelErrorException", (502, "server_error", "ModelErrorException", False, True)),
        (
            403,
            "UnrecognizedClientException",
            (403, "permission_error", "UnrecognizedClientException", False, False),
        ),
        (502, "SomethingNewException", (502, "server_error", "SomethingNewException", True, True)),
        (418, "SomethingNewException", (418, "invalid_request_error", "SomethingNewException", False, False)),
        (503, None, (503, "server_error", None, True, True)),
    ],
)
def test_classify_error(status: int, name: str | None, expected: tuple[Any, ...]) -> None:
    failure = classify(status, name, {"message": "upstream says so"})
    assert (
        failure.status,
        failure.error_type,
        failure.code,
        failure.retryable,
        failure.breaker_counts,
    ) == expected
    assert failure.message == "upstream says so"
    assert failure.retry_after_s is None


def test_classify_error_reads_the_body_type_and_code() -> None:
    by_type = classify(
        400, None, {"__type": "com.amazon.coral.service#ThrottlingException", "Message": "slow"}
    )
    assert (by_type.status, by_type.code, by_type.message) == (429, "ThrottlingException", "slow")
    by_code = classify(503, None, {"code": "ModelNotReadyException"})
    assert (by_code.status, by_code.code, by_code.retryable) == (503, "ModelNotReadyException", True)
    assert by_code.message == "Bedrock returned ModelNotReadyException"


def test_classification_never_reads_message_text() -> None:
    failure = classify(400, "ValidationException", {"message": "Too many requests, throttling, try again"})
    assert (failure.status, failure.retryable) == (400, False)


@pytest.mark.parametrize(("original", "retryable"), [(500, True), (503, True), (429, True), (400, False)])
def test_model_error_exception_retryable_by_original_status(original: int, retryable: bool) -> None:
    failure = classify(424, "ModelErrorException", {"message": "m", "originalStatusCode": original})
    assert failure.retryable is retryable


def test_classify_error_retry_after_and_non_json_body() -> None:
    failure = ADAPTER.classify_error(CLUSTER, 503, {"Retry-After": "3"}, b"<html>busy</html>")
    assert (failure.status, failure.retryable, failure.retry_after_s) == (503, True, 3.0)
    assert failure.message == "Bedrock returned HTTP 503"
