"""Member selection of a pool: several deployments of one provider/model behind one plan entry.

Each member is a cluster of its own (breaker, connection pool, credentials). For one attempt the
pool orders its members and asks their breakers in turn; the first that admits serves, and every
member passed over on the way is counted as skipped (`astra_pool_skips_total`):

- `weighted`: a random order in which each member comes first with probability proportional to
  its weight (Efraimidis-Spirakis keys, u ** (1 / weight)), so the member chosen is a weighted
  random choice among the members whose breaker admits;
- `least-in-flight`: the members by how many requests they have in flight on the transport
  (`astra_sidecar.sidecar.upstream.HttpTransport.in_flight`), ties in random order.

Members that already failed in this request come last, so a retry goes to another member when
one admits. The random source is injected (the runtime's, seeded in tests).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from astra_sidecar.compiler.table.pool import PoolStrategy
from astra_sidecar.sidecar.fleet.metrics import FleetMetrics
from astra_sidecar.sidecar.resilience.breaker import Permit

if TYPE_CHECKING:  # types only: the runtime imports the protocol registry
    from astra_sidecar.sidecar.runtime import ClusterRuntime

#: Requests in flight on one cluster key (0 for transports that do not count them).
InFlight = Callable[[str], int]


def no_in_flight(key: str) -> int:
    return 0


@dataclass(frozen=True, slots=True)
class PoolMemberRuntime:
    id: str
    cluster: ClusterRuntime
    weight: float


@dataclass(frozen=True, slots=True)
class PoolRuntime:
    """One pool of one agent's plan. `label` names the entry in metrics (primary, fallback1, …)."""

    agent: str
    label: str
    strategy: PoolStrategy
    members: tuple[PoolMemberRuntime, ...]
    in_flight: InFlight
    metrics: FleetMetrics

    def order(self, rng: random.Random, failed: Collection[str] = ()) -> list[PoolMemberRuntime]:
        """Every member, in the order to ask their breakers (members in `failed` last)."""
        if self.strategy == "least-in-flight":
            keyed = [(self.in_flight(m.cluster.cluster.key), rng.random(), m) for m in self.members]
            keyed.sort(key=lambda item: (item[0], item[1]))
        else:
            keyed = [(0, -(rng.random() ** (1.0 / m.weight)), m) for m in self.members]
            keyed.sort(key=lambda item: item[1])
        ordered = [m for _, _, m in keyed]
        return [m for m in ordered if m.id not in failed] + [m for m in ordered if m.id in failed]

    def pick(
        self, rng: random.Random, failed: Collection[str] = ()
    ) -> tuple[PoolMemberRuntime, Permit] | None:
        """The member of the next attempt with its breaker's permit, or None when every breaker refuses."""
        for member in self.order(rng, failed):
            permit = member.cluster.breaker.acquire()
            if permit is not None:
                self.metrics.pool_selections.labels(self.agent, self.label, member.id).inc()
                return member, permit
            self.metrics.pool_skips.labels(self.agent, self.label, member.id, "breaker_open").inc()
        return None

    async def sync_breakers(self) -> None:
        """Shared breakers (`circuitBreaker.shared`) adopt the fleet's openings before a pick."""
        for member in self.members:
            if member.cluster.breaker.store is not None:
                await member.cluster.breaker.sync()

    def untried(self, failed: Collection[str]) -> bool:
        """True while some member has not failed in this request."""
        return any(m.id not in failed for m in self.members)


def entry_label(index: int) -> str:
    return "primary" if index == 0 else f"fallback{index}"
