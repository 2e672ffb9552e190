"""What the sidecar will read from an upstream or hold for a client, as one frozen value.

Built from the table's `settings.limits` (see docs/hardening.md for the defaults and why).
The transport (`astra_sidecar.sidecar.upstream`) applies the read limits, the SSE decoder
(`astra_sidecar.sidecar.sse`) the line and event limits, the relay the stall limit, the body
reader (`astra_sidecar.sidecar.serving.common`) the body timeout, `astra serve`'s server
(`astra_sidecar.sidecar.server`) the header timeout and the admission check
(`astra_sidecar.sidecar.serving.admission`) the in-flight cap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    max_answer_bytes: int = 32 * MIB
    max_error_body_bytes: int = 64 * 1024
    max_sse_line_bytes: int = 8 * MIB
    max_event_frame_bytes: int = 16 * MIB
    max_headers: int = 128
    max_header_bytes: int = 16 * 1024
    max_decompressed_bytes: int = 32 * MIB
    max_compression_ratio: int = 200
    max_in_flight: int = 1024
    client_stall_ms: int = 30_000
    client_header_timeout_ms: int = 30_000
    client_body_timeout_ms: int = 60_000


DEFAULT_LIMITS = Limits()

#: Below this much output a high compression ratio is not judged (small bodies compress well).
RATIO_GRACE_BYTES = 1 * MIB


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


_KEYS = {_camel(f.name): f.name for f in fields(Limits)}


def limits_from(table_limits: Mapping[str, int]) -> Limits:
    """The table's `settings.limits` (camelCase, already checked by the compiler) over the defaults."""
    if not table_limits:
        return DEFAULT_LIMITS
    return Limits(**{_KEYS[key]: value for key, value in table_limits.items() if key in _KEYS})
