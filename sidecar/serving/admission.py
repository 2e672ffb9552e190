"""maxInFlight: how many requests (open streams included) the sidecar serves at once.

A request is admitted when the sidecar serves fewer than `maxInFlight` requests and its agent
holds less than its share: all of it when the table has one agent, else half, so one agent whose
upstream hangs (or that an attacker floods) cannot take every slot from the others. Beyond
that the caller gets 503 `over_capacity` with `Retry-After` in its API's error shape, and
`astra_admission_refused_total{reason}` counts it (`sidecar`, `agent`). `/healthz`, `/readyz`
and `/metrics` are no agent requests and are never refused.

Called once per request from `astra_sidecar.sidecar.serving.flow` when its agent is known;
`release` runs in the request's `finally`, whatever happened in between.
"""

from __future__ import annotations

from collections import Counter

from aiohttp import web

from astra_sidecar.sidecar.accesslog import AccessRecord
from astra_sidecar.sidecar.app_keys import STATE
from astra_sidecar.sidecar.errors import AstraError
from astra_sidecar.sidecar.protocols.base import Failure

RETRY_AFTER_S = 1.0


class Admission:
    """Requests in flight per agent; the sidecar-wide count is the app state's `in_flight`."""

    __slots__ = ("_admitted", "per_agent")

    def __init__(self) -> None:
        self.per_agent: Counter[str] = Counter()
        self._admitted: set[int] = set()

    def admit(self, in_flight: int, max_in_flight: int, agents: int, record: AccessRecord) -> str | None:
        """None when `record`'s request may go on, else the reason it may not."""
        agent = record.agent or ""
        if in_flight > max_in_flight:
            return "sidecar"
        share = max_in_flight if agents <= 1 else max(1, max_in_flight // 2)
        if self.per_agent[agent] >= share:
            return "agent"
        self.per_agent[agent] += 1
        self._admitted.add(id(record))
        return None

    def release(self, record: AccessRecord) -> None:
        if id(record) in self._admitted:
            self._admitted.discard(id(record))
            agent = record.agent or ""
            self.per_agent[agent] -= 1
            if self.per_agent[agent] <= 0:
                del self.per_agent[agent]


ADMISSION: web.AppKey[Admission] = web.AppKey("astra_admission", Admission)


def over_capacity(reason: str) -> AstraError:
    whom = "this agent's share of" if reason == "agent" else "the sidecar's"
    return AstraError(
        Failure(
            status=503,
            error_type="server_error",
            message=f"over capacity: {whom} concurrent requests (maxInFlight) are in use; retry shortly",
            code="over_capacity",
            retry_after_s=RETRY_AFTER_S,
        )
    )


def admit(request: web.Request, record: AccessRecord) -> None:
    """Raises the 503 (`over_capacity`, with Retry-After) when `record`'s request may not go on."""
    state = request.app[STATE]
    runtime = state.runtime
    max_in_flight = runtime.limits.max_in_flight
    reason = request.app[ADMISSION].admit(state.in_flight, max_in_flight, len(runtime.table.agents), record)
    if reason is not None:
        state.shared.metrics.admission_refused.labels(reason).inc()
        raise over_capacity(reason)


def release(request: web.Request, record: AccessRecord) -> None:
    admission = request.app.get(ADMISSION)
    if admission is not None:
        admission.release(record)
