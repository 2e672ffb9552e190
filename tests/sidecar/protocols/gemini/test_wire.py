"""The paired wire facts of `astra_sidecar.sidecar.protocols.gemini.wire`, and both directions reading them."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from astra_sidecar.sidecar.protocols.base import Failure, Usage
from astra_sidecar.sidecar.protocols.gemini.errors import classify
from astra_sidecar.sidecar.protocols.gemini.ingress_errors import error_object, rpc_status
from astra_sidecar.sidecar.protocols.gemini.ingress_response import usage_metadata
from astra_sidecar.sidecar.protocols.gemini.wire import (
    GEMINI_FINISH_BY_OPENAI,
    HTTP_STATUS_BY_RPC,
    OPENAI_FINISH_BY_GEMINI,
    RPC_BY_HTTP_STATUS,
    RPC_STATUSES,
    gemini_finish_reason,
    metadata_from_usage,
    openai_finish_reason,
    usage_from_metadata,
)

# --- finish reasons -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gemini", "has_calls", "openai"),
    [
        ("STOP", False, "stop"),
        ("STOP", True, "tool_calls"),
        (None, False, "stop"),
        ("OTHER", True, "tool_calls"),
        ("MAX_TOKENS", True, "length"),
        ("SAFETY", True, "content_filter"),
        ("IMAGE_RECITATION", False, "content_filter"),
        ("MALFORMED_FUNCTION_CALL", False, "stop"),
    ],
)
def test_gemini_finish_reason_as_openai(gemini: Any, has_calls: bool, openai: str) -> None:
    assert openai_finish_reason(gemini, has_calls) == openai


@pytest.mark.parametrize(
    ("openai", "gemini"),
    [
        ("stop", "STOP"),
        ("tool_calls", "STOP"),
        ("function_call", "STOP"),
        ("length", "MAX_TOKENS"),
        ("content_filter", "SAFETY"),
        (None, "STOP"),
        ("something_new", "OTHER"),
    ],
)
def test_openai_finish_reason_as_gemini(openai: Any, gemini: str) -> None:
    assert gemini_finish_reason(openai) == gemini


def test_finish_reasons_come_back_as_what_they_mean() -> None:
    """Through Gemini and back, every OpenAI reason keeps its meaning (STOP after calls is
    `tool_calls` again); every Gemini reason OpenAI has a word for comes back as itself, or as
    the one Gemini reason for that word."""
    for openai, gemini in GEMINI_FINISH_BY_OPENAI.items():
        has_calls = openai in ("tool_calls", "function_call")
        assert openai_finish_reason(gemini, has_calls) == ("tool_calls" if has_calls else openai)
    for openai in OPENAI_FINISH_BY_GEMINI.values():
        assert OPENAI_FINISH_BY_GEMINI[gemini_finish_reason(openai)] == openai


# --- HTTP status ↔ google.rpc status --------------------------------------------------------------


def test_rpc_statuses_are_the_canonical_codes() -> None:
    assert {
        "INVALID_ARGUMENT",
        "FAILED_PRECONDITION",
        "OUT_OF_RANGE",
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "ABORTED",
        "RESOURCE_EXHAUSTED",
        "CANCELLED",
        "UNKNOWN",
        "INTERNAL",
        "DATA_LOSS",
        "UNIMPLEMENTED",
        "UNAVAILABLE",
        "DEADLINE_EXCEEDED",
    } == RPC_STATUSES
    assert set(RPC_BY_HTTP_STATUS.values()) <= RPC_STATUSES


def test_the_rpc_status_of_an_http_status_maps_back_to_it_where_google_uses_it() -> None:
    for status, rpc in RPC_BY_HTTP_STATUS.items():
        if status not in (408, 502):  # the sidecar's own words for statuses Google does not send
            assert HTTP_STATUS_BY_RPC[rpc] == status


@pytest.mark.parametrize(("rpc", "status"), [("NOT_FOUND", 404), ("UNKNOWN", 500), ("CANCELLED", 499)])
def test_upstream_errors_without_a_code_read_the_table(rpc: str, status: int) -> None:
    failure = classify(200, {}, orjson.dumps({"error": {"message": "m", "status": rpc}}))
    assert (failure.status, failure.code) == (status, rpc)


@pytest.mark.parametrize(
    ("status", "rpc"), [(400, "INVALID_ARGUMENT"), (408, "DEADLINE_EXCEEDED"), (502, "UNAVAILABLE")]
)
def test_errors_sent_to_callers_read_the_table(status: int, rpc: str) -> None:
    failure = Failure(status=status, error_type="x", message="m", code="some_code")
    assert rpc_status(failure) == rpc
    assert error_object(failure)["error"]["status"] == rpc


# --- usage ----------------------------------------------------------------------------------------


def test_usage_from_metadata() -> None:
    meta = {
        "promptTokenCount": 10,
        "toolUsePromptTokenCount": 2,
        "candidatesTokenCount": 5,
        "thoughtsTokenCount": 3,
        "cachedContentTokenCount": 4,
        "totalTokenCount": 20,
    }
    assert usage_from_metadata(meta) == Usage(
        prompt_tokens=12, completion_tokens=8, cached_tokens=4, reasoning_tokens=3
    )
    assert usage_from_metadata(None) is None


def test_metadata_from_usage_is_the_inverse() -> None:
    usage = Usage(prompt_tokens=12, completion_tokens=8, cached_tokens=4, reasoning_tokens=3)
    meta = metadata_from_usage(usage)
    assert meta == {
        "promptTokenCount": 12,
        "candidatesTokenCount": 5,
        "totalTokenCount": 20,
        "cachedContentTokenCount": 4,
        "thoughtsTokenCount": 3,
    }
    assert usage_from_metadata(meta) == usage
    assert metadata_from_usage(Usage(prompt_tokens=3, completion_tokens=1)) == {
        "promptTokenCount": 3,
        "candidatesTokenCount": 1,
        "totalTokenCount": 4,
    }


def test_the_ingress_reads_openai_usage_into_the_same_mapping() -> None:
    usage = {
        "prompt_tokens": 9,
        "completion_tokens": 7,
        "completion_tokens_details": {"reasoning_tokens": 2},
        "prompt_tokens_details": {"cached_tokens": 4},
    }
    assert usage_metadata(usage) == metadata_from_usage(
        Usage(prompt_tokens=9, completion_tokens=7, cached_tokens=4, reasoning_tokens=2)
    )
    assert usage_metadata({"prompt_tokens": True, "completion_tokens": "7"}) == {
        "promptTokenCount": 0,
        "candidatesTokenCount": 0,
        "totalTokenCount": 0,
    }
    assert usage_metadata(None) is None
