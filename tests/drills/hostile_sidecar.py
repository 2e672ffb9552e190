"""The sidecar of the hostile drills, in a process of its own: served as `astra serve` serves it
(`server_settings`, uvloop when installed), its access lines written to a file, and measured
from inside by an event-loop lag probe and a `/drill/stats` route.

    python -m tests.drills.hostile_sidecar ASTRA_YML ACCESS_LOG   # prints "port N" when listening

The lag probe wakes every `LAG_TICK_S` and records how late it woke: a callback of the sidecar
that runs for 30 ms makes a wake-up at least that late, so the worst lag of a phase is an upper
bound on the longest callback that ran in it (asyncio's own `slow_callback_duration` needs debug
mode, which slows every callback down; `ASTRA_DRILL_DEBUG_LOOP=1` turns it on, and every
callback over 20 ms is then logged with its source, to find what a lag was). `/drill/stats?reset=1`
returns the figures and starts a new phase: the worst lag and the peak RSS
(`/proc/self/clear_refs`) start over; `?close_pools=1` first closes the upstream connection pools
(kept-alive upstream connections are fds too), so that a count after the drill compares with one
before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import BinaryIO

import orjson
from aiohttp import web

from astra_sidecar.compiler.loader import load_routing_table
from astra_sidecar.sidecar.app import create_app
from astra_sidecar.sidecar.app_keys import STATE
from astra_sidecar.sidecar.server import server_settings

LAG_TICK_S = 0.005


class FileSink:
    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def write(self, line: bytes) -> None:
        self._stream.write(line + b"\n")

    def flush(self) -> None:
        self._stream.flush()


class LagProbe:
    """How late the loop woke a sleeper (`worst_s`), and how much of that lateness this process
    spent on the CPU (`worst_busy_s`, the lateness capped by the CPU time used meanwhile): on a
    machine shared with other work the process is also late when the kernel runs something else,
    which is no callback of the sidecar."""

    def __init__(self) -> None:
        self.worst_s, self.worst_busy_s, self.over_10ms, self.ticks = 0.0, 0.0, 0, 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before, cpu_before = loop.time(), time.process_time()
            await asyncio.sleep(LAG_TICK_S)
            lag = loop.time() - before - LAG_TICK_S
            busy = min(lag, time.process_time() - cpu_before)
            self.ticks += 1
            self.over_10ms += busy > 0.010
            self.worst_s = max(self.worst_s, lag)
            self.worst_busy_s = max(self.worst_busy_s, busy)

    def reset(self) -> None:
        self.worst_s, self.worst_busy_s, self.over_10ms, self.ticks = 0.0, 0.0, 0, 0


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def _stats_route(probe: LagProbe, runner: web.AppRunner) -> web.RouteDef:
    async def stats(request: web.Request) -> web.Response:
        if request.query.get("close_pools"):
            http = request.app[STATE].shared.http
            await http.retire_except(set())
            await http.close()
        server = runner.server
        body = {
            "rss_kib": _status("VmRSS:"),
            "peak_rss_kib": _status("VmHWM:"),
            "fds": len(os.listdir("/proc/self/fd")),
            "tasks": len(asyncio.all_tasks()),
            "connections": len(server.connections) if server is not None else 0,
            "worst_lag_ms": round(probe.worst_s * 1000.0, 2),
            "worst_busy_lag_ms": round(probe.worst_busy_s * 1000.0, 2),
            "lag_over_10ms": probe.over_10ms,
            "lag_ticks": probe.ticks,
        }
        if request.query.get("reset"):
            probe.reset()
            with contextlib.suppress(OSError):  # resets VmHWM to the current RSS
                Path("/proc/self/clear_refs").write_text("5")
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    return web.get("/drill/stats", stats)


async def _serve(yml: str, access_path: str) -> None:
    table = load_routing_table(yml)
    with open(access_path, "ab", buffering=0) as access:
        app = create_app(table, access_sink=FileSink(access))
        probe = LagProbe()
        runner = web.AppRunner(app, **server_settings(table))
        app.router.add_routes([_stats_route(probe, runner)])
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)  # as `astra serve`
        await site.start()
        loop = asyncio.get_running_loop()
        if os.environ.get("ASTRA_DRILL_DEBUG_LOOP"):
            logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
            loop.set_debug(True)
            loop.slow_callback_duration = 0.02
        lag = loop.create_task(probe.run())
        print(f"port {runner.addresses[0][1]}", flush=True)
        try:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until stdin closes
        finally:
            lag.cancel()
            await runner.cleanup()


def main() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(_serve(sys.argv[1], sys.argv[2]))


if __name__ == "__main__":
    main()
