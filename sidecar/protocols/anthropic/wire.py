"""Facts of the Anthropic Messages API that both directions use: the URL and headers of every
request (the adapter for OpenAI-format callers, the native path for Anthropic callers), the limits
the API imposes, and the paired mappings between Anthropic and OpenAI terms (stop reasons, error
types, usage), each pair side by side.

`POST {base_url}/v1/messages` with `x-api-key` (or `Authorization: Bearer` when the cluster's
auth style is `bearer`) and `anthropic-version: 2023-06-01`; the cluster's extra headers (e.g.
`anthropic-beta`) are added, lower-cased, and may override the version but never the auth header.

References: https://docs.anthropic.com/en/api/messages, https://docs.anthropic.com/en/api/errors,
https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.protocols.base import AuthMaterial, Usage

Json = dict[str, Any]

ANTHROPIC_VERSION = "2023-06-01"

#: `max_tokens` when neither the caller nor the agent set one (the API requires it).
DEFAULT_MAX_TOKENS = 4096

#: The most `cache_control` breakpoints one request may carry.
MAX_CACHE_MARKS = 4
EPHEMERAL: Json = {"type": "ephemeral"}


def messages_url(cluster: Cluster) -> str:
    return cluster.base_url.rstrip("/") + "/v1/messages"


def request_headers(cluster: Cluster, auth: AuthMaterial) -> dict[str, str]:
    """The upstream headers (lower-case names) for one request to this cluster."""
    headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
    headers.update({name.lower(): value for name, value in cluster.headers.items()})
    headers.pop("x-api-key", None)
    headers.pop("authorization", None)
    if auth.token is not None:
        if cluster.auth == "bearer":
            headers["authorization"] = "Bearer " + auth.token.reveal()
        else:
            headers["x-api-key"] = auth.token.reveal()
    return headers


# --- stop_reason ⇄ finish_reason ------------------------------------------------------------------
# Not a bijection: Anthropic has several reasons for one OpenAI reason (and OpenAI's legacy
# `function_call`), so each direction has its own table.

FINISH_REASONS: Mapping[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
STOP_REASONS: Mapping[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def finish_reason(stop_reason: str | None, client_tool_calls: int) -> str:
    """OpenAI's finish_reason for an Anthropic stop_reason (`tool_calls` only with client calls)."""
    reason = FINISH_REASONS.get(stop_reason or "", "stop")
    if reason == "tool_calls" and client_tool_calls == 0:
        return "stop"
    return reason


def stop_reason(finish_reason: str | None, tool_calls: bool) -> str:
    """Anthropic's stop_reason for an OpenAI finish_reason (`tool_use` whenever there are calls)."""
    reason = STOP_REASONS.get(finish_reason or "", "end_turn")
    return "tool_use" if tool_calls and reason == "end_turn" else reason


# --- error type ⇄ HTTP status ---------------------------------------------------------------------

#: The HTTP status Anthropic uses for each error type (for error objects without their status:
#: an `event: error` mid-stream, an error body inside a 200).
ERROR_TYPE_STATUS: Mapping[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
#: The error type the Anthropic ingress answers with for a status: the inverse of the table
#: above, plus the sidecar's own 503 (an open breaker, no cluster left), which reads as overloaded.
ERROR_TYPES: Mapping[int, str] = {status: kind for kind, status in ERROR_TYPE_STATUS.items()} | {
    503: "overloaded_error"
}


def error_type(status: int) -> str:
    """The Anthropic error type for a status; other 4xx are invalid requests, other 5xx api errors."""
    return ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")


# --- usage ⇄ usage ------------------------------------------------------------------------------
# Anthropic's `input_tokens` excludes cache reads and writes; OpenAI's `prompt_tokens` includes
# them (cache reads as `cached_tokens`, writes as `cache_write_tokens` where reported).


def usage_from(raw: Mapping[str, Any]) -> Usage:
    """OpenAI usage from Anthropic's: its input_tokens excludes cache reads and writes."""
    cache_read = int(raw.get("cache_read_input_tokens") or 0)
    prompt = int(raw.get("input_tokens") or 0) + int(raw.get("cache_creation_input_tokens") or 0) + cache_read
    return Usage(
        prompt_tokens=prompt, completion_tokens=int(raw.get("output_tokens") or 0), cached_tokens=cache_read
    )


def anthropic_usage(usage: Any) -> Json:
    """Anthropic usage from OpenAI's (a JSON object, or anything else for zeros)."""
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    cached = int(details.get("cached_tokens") or 0)
    written = int(details.get("cache_write_tokens") or 0)
    return {
        "input_tokens": max(0, int(usage.get("prompt_tokens") or 0) - cached - written),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
        "output_tokens": int(usage.get("completion_tokens") or 0),
    }
