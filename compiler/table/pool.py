"""The pool part of the routing table: plan entries served by several deployments.

An agent's `pools` maps a plan key (the cluster of the pool's first member) to a `Pool`; every
member is a cluster of its own (own breaker, connection pool and credentials). The sidecar's
`astra_sidecar.sidecar.resilience.pool` picks the member of each attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

Json = dict[str, Any]
PoolStrategy = Literal["weighted", "least-in-flight"]


@dataclass(frozen=True, slots=True)
class PoolMember:
    """One deployment of the pool: its name (metrics, `x-astra-pool-member`), cluster and weight."""

    id: str
    cluster: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Pool:
    strategy: PoolStrategy
    members: tuple[PoolMember, ...]


def pools_from(d: Json | None) -> MappingProxyType[str, Pool]:
    return MappingProxyType(
        {
            key: Pool(
                strategy=pool["strategy"],
                members=tuple(PoolMember(m["id"], m["cluster"], float(m["weight"])) for m in pool["members"]),
            )
            for key, pool in (d or {}).items()
        }
    )
