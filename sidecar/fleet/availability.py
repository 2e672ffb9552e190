"""Whether the fleet's Redis answers one user of it (quotas, shared breakers): a gauge, and one
log line per change of state, never one per failed call."""

from __future__ import annotations

import logging

from astra_sidecar.sidecar.metric_families import Gauge

log = logging.getLogger("astra.sidecar.fleet")


class StateAvailability:
    """`became(…)` after every call to Redis; it logs and sets the gauge only when that changes.

    `what` names the state in the log lines (`quota state`, `shared breaker state`), `event` their
    `event` field (`{event}_available`, `{event}_unavailable`), `meanwhile` what the sidecar does
    while the state cannot be reached (appended to the unreachable line)."""

    __slots__ = ("_available", "_event", "_gauge", "_meanwhile", "_what")

    def __init__(self, gauge: Gauge, what: str, event: str, meanwhile: str = "") -> None:
        self._gauge, self._what, self._event, self._meanwhile = gauge, what, event, meanwhile
        self._available = True
        gauge.set(1)

    def became(self, available: bool, reason: str = "") -> None:
        if available == self._available:
            return
        self._available = available
        self._gauge.set(1 if available else 0)
        if available:
            log.warning("%s reachable again", self._what, extra={"event": f"{self._event}_available"})
        else:
            log.error(
                "%s unreachable%s: %s",
                self._what,
                self._meanwhile,
                reason,
                extra={"event": f"{self._event}_unavailable"},
            )
