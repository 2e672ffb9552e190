"""The wire facts of the Gemini API that both directions share: finish reasons, HTTP status ↔
`google.rpc` status, and usage counts.

Upstream (Gemini → OpenAI: `response`, `stream`, `errors`) reads the left side of each pair;
ingress (OpenAI → Gemini: `ingress_response`, `ingress_stream`, `ingress_errors`) writes it.
Sources: `FinishReason` and `UsageMetadata` in Google's API reference
(https://ai.google.dev/api/generate-content), and the canonical error codes
(https://cloud.google.com/apis/design/errors#handling_errors, google/rpc/code.proto).
"""

from __future__ import annotations

from typing import Any

from astra_sidecar.sidecar.protocols.base import Usage

Json = dict[str, Any]

#: The two generate methods, as they appear in `models/{model}:{method}`.
GENERATE_METHODS = ("generateContent", "streamGenerateContent")
#: The `@type` prefix of `google.rpc` error details (`ErrorInfo`, `RetryInfo`, …).
RPC_TYPE_PREFIX = "type.googleapis.com/google.rpc."

# --- finish reasons -------------------------------------------------------------------------------
# Not a bijection: Gemini has many blocking reasons for OpenAI's one `content_filter`, and OpenAI
# splits Gemini's STOP into `stop` and `tool_calls` (Gemini says STOP after function calls too).

#: Gemini `finishReason` → OpenAI `finish_reason`; any other reason (STOP, OTHER…) is a plain stop.
OPENAI_FINISH_BY_GEMINI: dict[str, str] = {
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "LANGUAGE": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "MODEL_ARMOR": "content_filter",  # Vertex: Model Armor blocked the answer
}
#: OpenAI `finish_reason` → Gemini `finishReason`; any other reason is OTHER.
GEMINI_FINISH_BY_OPENAI: dict[str, str] = {
    "stop": "STOP",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
}


def openai_finish_reason(reason: Any, has_calls: bool) -> str:
    """A candidate's `finishReason` as OpenAI says it (`tool_calls` when the candidate called)."""
    mapped = OPENAI_FINISH_BY_GEMINI.get(reason)
    if mapped is not None:
        return mapped
    return "tool_calls" if has_calls else "stop"


def gemini_finish_reason(reason: Any) -> str:
    """A choice's `finish_reason` as Gemini says it (none given: STOP)."""
    return GEMINI_FINISH_BY_OPENAI.get(reason, "OTHER") if reason is not None else "STOP"


# --- HTTP status ↔ google.rpc status --------------------------------------------------------------
# Not a bijection: several RPC statuses share an HTTP status (400, 409, 500), and the sidecar
# words a few HTTP statuses Google does not use on its own (408, 502) with the nearest RPC status.

#: An RPC status → its HTTP status (Google's mapping), for upstream errors that lack a `code`.
HTTP_STATUS_BY_RPC: dict[str, int] = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INTERNAL": 500,
    "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
#: An HTTP status → the RPC status the sidecar's own errors carry.
RPC_BY_HTTP_STATUS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
#: Google's canonical RPC status names (but OK): an upstream Gemini failure's `code` is one of them.
RPC_STATUSES = frozenset(HTTP_STATUS_BY_RPC)


# --- usage ----------------------------------------------------------------------------------------
# Inverses of each other: thoughts are outside `candidatesTokenCount` in Gemini and inside
# `completion_tokens` in OpenAI; cached tokens are inside the prompt count in both. (Tool-use
# prompt tokens are folded into the prompt, so they come back as part of `promptTokenCount`.)


def usage_from_metadata(meta: Any) -> Usage | None:
    """Gemini `usageMetadata` → `Usage`."""
    if not isinstance(meta, dict):
        return None

    def count(key: str) -> int:
        value = meta.get(key)
        return value if isinstance(value, int) else 0

    thoughts = count("thoughtsTokenCount")
    return Usage(
        prompt_tokens=count("promptTokenCount") + count("toolUsePromptTokenCount"),
        completion_tokens=count("candidatesTokenCount") + thoughts,
        cached_tokens=count("cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def metadata_from_usage(usage: Usage) -> Json:
    """`Usage` → Gemini `usageMetadata` (cached and thought counts only when there are any)."""
    prompt, completion, thoughts = usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens
    meta: Json = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": max(0, completion - thoughts),
        "totalTokenCount": prompt + completion,
    }
    if usage.cached_tokens:
        meta["cachedContentTokenCount"] = usage.cached_tokens
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    return meta
