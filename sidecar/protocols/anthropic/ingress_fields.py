"""Which Anthropic Messages fields a translated agent (one whose cluster is not Anthropic's) can
serve: every top-level field of the request is honoured, translated, or refused with a 400 naming
it, never dropped in silence (the table is in docs/config.md, "Anthropic Messages fields on
translated agents"). Native calls never come here: their body goes to Anthropic as it came.

Field list after https://docs.anthropic.com/en/api/messages (and the beta parameters of
https://docs.anthropic.com/en/api/beta/messages). A `null` value is the same as an absent field,
as the SDKs send optional fields that way.

`anthropic-beta` flags never cause a refusal here: a beta only unlocks fields, and each field is
judged below, whatever flag came with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from astra_sidecar.sidecar.errors import ClientError

Json = dict[str, Any]

_ELSEWHERE = "not served by this agent's provider (only Anthropic models have it)"


def _refuse(param: str, what: str) -> ClientError:
    return ClientError(400, f"{param}: {what}", code="unsupported_parameter", param=param)


def _accepted(value: Any, param: str) -> None:
    """Translated or honoured by `ingress_translate` (or checked by `ingress_validate`)."""


def _refused(value: Any, param: str) -> None:
    raise _refuse(param, _ELSEWHERE)


def _one_of(*allowed: str) -> Callable[[Any, str], None]:
    def check(value: Any, param: str) -> None:
        if value not in allowed:
            listed = ", ".join(repr(a) for a in allowed)
            raise _refuse(param, f"{value!r} is {_ELSEWHERE}; accepted here: {listed}")

    return check


def _metadata(value: Any, param: str) -> None:
    for key in value:
        if key != "user_id":
            raise _refuse(f"{param}.{key}", "unknown metadata field (Anthropic takes only user_id)")


_OUTPUT_CONFIG = frozenset({"format", "effort"})


def _output_config(value: Any, param: str) -> None:
    for key, inner in value.items():
        if inner is not None and key not in _OUTPUT_CONFIG:
            raise _refuse(f"{param}.{key}", _ELSEWHERE)


def _context_management(value: Any, param: str) -> None:
    """Thinking-clearing edits are honoured: a translated request never carries earlier thinking
    blocks (no other provider can read them). Any other edit changes what the model sees on
    Anthropic's servers only."""
    edits = value.get("edits") if isinstance(value, dict) else None
    for key in value:
        if key != "edits":
            raise _refuse(f"{param}.{key}", _ELSEWHERE)
    for index, edit in enumerate(edits or ()):
        kind = edit.get("type") if isinstance(edit, dict) else None
        if not (isinstance(kind, str) and kind.startswith("clear_thinking_")):
            raise _refuse(f"{param}.edits.{index}", f"the edit {kind!r} is {_ELSEWHERE}")


def _billing_policy(value: Any, param: str) -> None:
    if not isinstance(value, dict) or value.get("bill_to", "self") != "self":
        raise _refuse(param, f"billing another organization is {_ELSEWHERE}")


#: Every top-level field, and what a translated agent does with it.
TOP_LEVEL: Mapping[str, Callable[[Any, str], None]] = {
    "model": _accepted,  # ignored: the path names the agent
    "messages": _accepted,
    "system": _accepted,
    "max_tokens": _accepted,
    "stream": _accepted,
    "temperature": _accepted,
    "top_p": _accepted,
    "stop_sequences": _accepted,
    "tools": _accepted,  # each tool: `check_tools`
    "tool_choice": _accepted,
    "metadata": _metadata,
    "output_format": _accepted,
    "output_config": _output_config,
    "thinking": _accepted,  # see docs/config.md, "Reasoning models"
    "context_management": _context_management,
    "cache_control": _accepted,  # a caching hint: other providers cache prefixes on their own
    "service_tier": _one_of("auto", "standard_only"),  # both are served at standard capacity
    "speed": _one_of("standard"),
    "billing_policy": _billing_policy,
    "top_k": _refused,
    "container": _refused,
    "mcp_servers": _refused,
    "inference_geo": _refused,
    "diagnostics": _refused,
    "fallbacks": _refused,
    "fallback_credit_token": _refused,
    "thread": _refused,
    "compaction": _refused,
}

#: The fields of a custom tool definition a translated agent takes. `cache_control` is a caching
#: hint; `eager_input_streaming` is what translated streams do anyway (argument fragments are
#: relayed as they come); `defer_loading` tools are offered up front (there is no deferred loading
#: elsewhere).
TOOL_FIELDS = frozenset(
    {
        "name",
        "description",
        "input_schema",
        "type",
        "strict",
        "cache_control",
        "eager_input_streaming",
        "defer_loading",
    }
)


def check_translatable(body: Json) -> None:
    """A 400 naming the first field of a checked Messages body a translated agent cannot serve."""
    for key, value in body.items():
        if value is None:
            continue
        check = TOP_LEVEL.get(key)
        if check is None:
            raise ClientError(
                400,
                f"{key}: unknown field (not a Messages API field this sidecar can translate)",
                code="unknown_parameter",
                param=key,
            )
        check(value, key)
    check_tools(body.get("tools"))


def check_tools(tools: Any) -> None:
    for index, tool in enumerate(tools or ()):
        if tool.get("type") not in (None, "custom"):
            continue  # a server tool: refused by the translation, which names its type
        for key in tool:
            if key not in TOOL_FIELDS and tool[key] is not None:
                raise _refuse(f"tools.{index}.{key}", f"this tool field is {_ELSEWHERE}")
