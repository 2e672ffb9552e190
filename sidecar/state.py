"""The app's mutable state: the current runtime (swapped whole on reload), draining, in-flight."""

from __future__ import annotations

import asyncio
import logging

from astra_sidecar.compiler.table import RoutingTable
from astra_sidecar.sidecar.runtime import Runtime, SharedState, build_runtime

log = logging.getLogger("astra.sidecar")


class AppState:
    def __init__(self, table: RoutingTable, shared: SharedState, source_path: str | None = None) -> None:
        self.shared = shared
        self.source_path = source_path
        self.runtime: Runtime = build_runtime(table, shared)
        self.draining = False
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        shared.metrics.serving(table.hash, table.schema_version)

    async def swap(self, table: RoutingTable) -> None:
        """Serve `table` from now on; requests already running finish on the runtime they hold."""
        runtime = build_runtime(table, self.shared)
        self.runtime = runtime
        self.shared.metrics.serving(table.hash, table.schema_version)
        await self.shared.forget_except(set(runtime.clusters))

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()
        self.shared.metrics.in_flight.inc()

    def leave(self) -> None:
        self.in_flight -= 1
        self.shared.metrics.in_flight.dec()
        if self.in_flight == 0:
            self._idle.set()

    async def drain(self, grace_s: float) -> bool:
        """Stop taking requests and wait for in-flight ones; True if all finished in time."""
        self.draining = True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=grace_s)
        except TimeoutError:
            log.warning("drain grace period over with %d requests in flight", self.in_flight)
            return False
        return True
