"""The table JSON of a pool: the members of one plan entry, each resolved to a cluster of its own.

A member overrides the entry's `endpoint` and/or the API key variable (`apiKeyEnv`, default the
provider's); its cluster key gains `#key=<VARIABLE>` when its key differs from the entry's, so two
keys of one endpoint keep apart breakers and connection pools. See docs/fleet.md ("Pools").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from astra_sidecar.compiler.table import Json
from astra_sidecar.compiler.yamlpos import Path

DEFAULT_STRATEGY = "weighted"


@dataclass(frozen=True, slots=True)
class MemberSpec:
    """One written member: its name, YAML path, overrides and weight."""

    id: str
    path: Path
    endpoint: str | None
    api_key_env: str | None
    weight: float


def member_id(index: int, member: Mapping[str, Any]) -> str:
    """The member's `id`, else `member<n>` (1-based, in file order)."""
    written = member.get("id")
    return written if isinstance(written, str) else f"member{index + 1}"


def members_of(entry_path: Path, pool: Mapping[str, Any]) -> Iterator[MemberSpec]:
    for index, member in enumerate(pool["members"]):
        yield MemberSpec(
            id=member_id(index, member),
            path=(*entry_path, "pool", "members", index),
            endpoint=member.get("endpoint"),
            api_key_env=member.get("apiKeyEnv"),
            weight=float(member.get("weight", 1)),
        )


def key_suffix(member_env: str | None, entry_env: str | None) -> str:
    """ "#key=<VAR>" when the member authenticates with another variable than the entry would."""
    return f"#key={member_env}" if member_env and member_env != entry_env else ""


def pool_json(pool: Mapping[str, Any], members: list[tuple[MemberSpec, str]]) -> Json:
    """{strategy, members: [{id, cluster, weight}]} for the table."""
    return {
        "strategy": pool.get("strategy", DEFAULT_STRATEGY),
        "members": [{"id": m.id, "cluster": key, "weight": m.weight} for m, key in members],
    }
