"""Hot reload: on SIGHUP, or when the served file changes, load the new table and swap it in.

The new file is loaded off the event loop by the loader `astra serve` was given (the compiler's:
an astra.yml is compiled, a routing table validated). If it gives no table (`TableLoadError`, or
OSError) the old table stays, the reason is logged in one line and
`astra_reloads_total{result="failed"}` counts it. Requests in flight finish on the runtime they
started with.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from astra_sidecar.compiler.table import RoutingTable, TableLoadError
from astra_sidecar.sidecar.state import AppState

log = logging.getLogger("astra.sidecar")

#: Reads the table at a path; raises TableLoadError (or OSError) when the file gives none.
TableLoader = Callable[[str], RoutingTable]


class Reloader:
    def __init__(self, state: AppState, path: str, load: TableLoader) -> None:
        self._state = state
        self._path = path
        self._load = load
        self._lock = asyncio.Lock()
        self._fingerprint = _fingerprint(path)

    async def reload(self, reason: str) -> bool:
        async with self._lock:
            self._fingerprint = _fingerprint(self._path)
            metrics = self._state.shared.metrics
            try:
                table = await asyncio.to_thread(self._load, self._path)
            except (TableLoadError, OSError) as exc:
                metrics.reloads.labels("failed").inc()
                log.error("reload (%s) refused, still serving the previous table: %s", reason, _describe(exc))
                return False
            if table.hash == self._state.runtime.table.hash:
                return True
            await self._state.swap(table)
            metrics.reloads.labels("ok").inc()
            log.info("reload (%s): now serving table %s", reason, table.hash)
            return True

    async def watch(self, interval_s: float = 1.0) -> None:
        """Polls the file's identity (inode, size, mtime) and reloads when it changes."""
        while True:
            await asyncio.sleep(interval_s)
            if _fingerprint(self._path) != self._fingerprint:
                await self.reload("file changed")


def _fingerprint(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _describe(exc: TableLoadError | OSError) -> str:
    if isinstance(exc, TableLoadError) and exc.reasons:
        return "; ".join(exc.reasons)
    return f"{type(exc).__name__}: {exc}"
