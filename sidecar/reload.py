"""Hot reload: on SIGHUP, or when the served file changes, load the new table and swap it in.

The new file is loaded off the event loop by the loader `astra serve` was given (the compiler's:
an astra.yml is compiled, a routing table validated), then the runtime is built and swapped in
(`AppState.swap`). Whatever fails in either step — `TableLoadError`, OSError, a Vertex AI cluster
without its extra, any other exception — the old table stays, the reason is one JSON log line
(`stage` load or swap) and `astra_reloads_total{result="failed"}` counts it; the watcher keeps
watching. A reload that finds the same table says so, counts `result="unchanged"` and changes
nothing. Requests in flight
finish on the runtime they started with.
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
        """Load and serve the file now; False (logged and counted) when the old table stays."""
        async with self._lock:
            self._fingerprint = _fingerprint(self._path)
            try:
                table = await asyncio.to_thread(self._load, self._path)
            except Exception as exc:
                return self._failed(reason, "load", exc)
            current = self._state.runtime.table.hash
            if table.hash == current:
                self._state.shared.metrics.reloads.labels("unchanged").inc()
                log.info("reload (%s): the table is unchanged (%s), nothing to do", reason, current)
                return True
            try:
                await self._state.swap(table)
            except Exception as exc:
                return self._failed(reason, "swap", exc)
            self._state.shared.metrics.reloads.labels("ok").inc()
            log.info("reload (%s): now serving table %s", reason, table.hash)
            return True

    def _failed(self, reason: str, stage: str, exc: Exception) -> bool:
        self._state.shared.metrics.reloads.labels("failed").inc()
        log.error(
            "reload (%s) failed in the %s step, still serving table %s: %s",
            reason,
            stage,
            self._state.runtime.table.hash,
            describe(exc),
        )
        return False

    async def watch(self, interval_s: float = 1.0) -> None:
        """Polls the file's identity (inode, size, mtime) and reloads when it changes; never ends
        on a failure (`reload` logs and counts its own)."""
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


def describe(exc: BaseException) -> str:
    """One line on why a table could not be loaded or served (diagnostics, or the error's text)."""
    if isinstance(exc, TableLoadError) and exc.reasons:
        return "; ".join(exc.reasons)
    return f"{type(exc).__name__}: {exc}"
