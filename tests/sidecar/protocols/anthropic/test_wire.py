"""The paired mappings of `wire`: each direction agrees with the other where the mapping is an
inverse, and the tables are what both directions answered before they were paired."""

from __future__ import annotations

import pytest

from astra_sidecar.sidecar.protocols.anthropic import wire
from astra_sidecar.sidecar.protocols.openai import wire as shapes


def test_error_types_are_the_inverse_of_their_statuses_plus_the_sidecars_503() -> None:
    for kind, status in wire.ERROR_TYPE_STATUS.items():
        assert wire.error_type(status) == kind
    assert dict(wire.ERROR_TYPES) == {
        400: "invalid_request_error",
        401: "authentication_error",
        402: "billing_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        500: "api_error",
        503: "overloaded_error",
        504: "timeout_error",
        529: "overloaded_error",
    }
    assert (wire.error_type(422), wire.error_type(502)) == ("invalid_request_error", "api_error")


def test_stop_reasons_round_trip_to_the_same_meaning() -> None:
    for stop, finish in wire.FINISH_REASONS.items():
        assert wire.FINISH_REASONS[wire.STOP_REASONS[finish]] == finish, stop
    for finish, stop in wire.STOP_REASONS.items():
        assert wire.STOP_REASONS[wire.FINISH_REASONS[stop]] == stop, finish


@pytest.mark.parametrize(
    ("stop", "calls", "finish"),
    [("tool_use", 2, "tool_calls"), ("tool_use", 0, "stop"), (None, 0, "stop"), ("new_reason", 1, "stop")],
)
def test_finish_reason(stop: str | None, calls: int, finish: str) -> None:
    assert wire.finish_reason(stop, calls) == finish


@pytest.mark.parametrize(
    ("finish", "calls", "stop"),
    [
        ("stop", True, "tool_use"),
        ("length", True, "max_tokens"),
        (None, False, "end_turn"),
        ("x", False, "end_turn"),
    ],
)
def test_stop_reason(finish: str | None, calls: bool, stop: str) -> None:
    assert wire.stop_reason(finish, calls) == stop


def test_usage_round_trips_through_openai_terms() -> None:
    anthropic = {
        "input_tokens": 20,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 900,
        "output_tokens": 3,
    }
    usage = wire.usage_from(anthropic)
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (920, 900, 3)
    assert wire.anthropic_usage(shapes.usage_json(usage)) == anthropic
    assert wire.anthropic_usage(None) == dict.fromkeys(anthropic, 0)
