"""Checks of `settings.limits` that the schema cannot express (AST240-AST249).

The schema gives each limit its type and floor; these catch combinations where one limit makes
another unreachable, so the value written would never apply (docs/hardening.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from astra_sidecar.compiler.config import Config
from astra_sidecar.compiler.diagnostics import Diagnostic
from astra_sidecar.compiler.schemas import schema_defaults

#: botocore's `EventStreamBuffer` refuses frames with a payload over 24 MiB whatever we allow.
BOTOCORE_MAX_FRAME = 24 * 1024 * 1024


def _limits(config: Config) -> Mapping[str, Any]:
    return {**schema_defaults("$defs/settings/properties/limits"), **config.settings.get("limits", {})}


def check_limits(config: Config) -> Iterator[Diagnostic]:
    written = config.settings.get("limits")
    if not isinstance(written, Mapping):
        return
    limits = _limits(config)
    doc = config.doc

    def at(key: str) -> Any:
        return doc.value_pos(("settings", "limits", key))

    answer = limits["maxAnswerBytes"]
    if "maxDecompressedBytes" in written and limits["maxDecompressedBytes"] < answer:
        yield doc.diag(
            at("maxDecompressedBytes"),
            "AST240",
            f"maxDecompressedBytes {limits['maxDecompressedBytes']} is below maxAnswerBytes {answer}: "
            "compressed answers are refused before they reach the answer limit",
        )
    if "maxSseLineBytes" in written and limits["maxSseLineBytes"] > answer:
        yield doc.diag(
            at("maxSseLineBytes"),
            "AST241",
            f"maxSseLineBytes {limits['maxSseLineBytes']} is above maxAnswerBytes {answer}: "
            "a stream is refused at the answer limit first",
        )
    if "maxEventFrameBytes" in written and limits["maxEventFrameBytes"] > BOTOCORE_MAX_FRAME:
        yield doc.diag(
            at("maxEventFrameBytes"),
            "AST242",
            f"maxEventFrameBytes {limits['maxEventFrameBytes']} is above the {BOTOCORE_MAX_FRAME} bytes "
            "the event-stream decoder (botocore) accepts: larger frames are refused anyway",
        )
    deadline = config.settings.get("requestTimeoutMs", schema_defaults("$defs/settings")["requestTimeoutMs"])
    if "clientStallMs" in written and isinstance(deadline, int) and limits["clientStallMs"] >= deadline:
        yield doc.diag(
            at("clientStallMs"),
            "AST243",
            f"clientStallMs {limits['clientStallMs']} is not below requestTimeoutMs {deadline}: "
            "the request deadline ends a stalled stream first",
        )
