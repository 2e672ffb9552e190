"""`astra serve`: load the table, serve it, reload on SIGHUP or file change, drain on SIGTERM.

With `--workers N` the parent forks N workers that share the port (SO_REUSEPORT); each has its
own breakers and pools. The parent forwards SIGTERM/SIGINT/SIGHUP and exits when they have.

Tables come from the loader the caller passes (`astra_sidecar.cli` passes the compiler's), which
raises `TableLoadError` (or OSError) when a file gives no table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from dataclasses import dataclass

from aiohttp import web

from astra_sidecar.compiler.table import RoutingTable, TableLoadError
from astra_sidecar.sidecar.accesslog import BufferedSink, configure_logging
from astra_sidecar.sidecar.app import create_app
from astra_sidecar.sidecar.app_keys import STATE
from astra_sidecar.sidecar.reload import Reloader, TableLoader

log = logging.getLogger("astra.sidecar")


@dataclass(frozen=True, slots=True)
class ServeOptions:
    path: str
    load: TableLoader
    host: str | None = None
    port: int | None = None
    workers: int = 1
    watch_interval_s: float = 1.0


def serve_main(args: argparse.Namespace, load: TableLoader) -> int:
    """`astra serve` with the command line's arguments and the table loader to use."""
    options = ServeOptions(
        path=args.config, load=load, host=args.host, port=args.port, workers=max(1, args.workers)
    )
    return serve(options)


def serve(options: ServeOptions) -> int:
    configure_logging()
    try:
        table = options.load(options.path)
    except TableLoadError as exc:
        print("\n".join(exc.reasons) or f"{options.path}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{options.path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    host = options.host or table.settings.listen.host
    port = options.port if options.port is not None else table.settings.listen.port
    if options.workers > 1:
        return _supervise(options, host, port)
    return _run_worker(options, table, host, port, reuse_port=False)


def _use_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _run_worker(options: ServeOptions, table: RoutingTable, host: str, port: int, *, reuse_port: bool) -> int:
    _use_uvloop()
    return asyncio.run(_serve_async(options, table, host, port, reuse_port))


async def _serve_async(
    options: ServeOptions, table: RoutingTable, host: str, port: int, reuse_port: bool
) -> int:
    app = create_app(table, source_path=options.path, access_sink=BufferedSink())
    state = app[STATE]
    grace_s = state.runtime.table.settings.drain_grace_ms / 1000.0
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=grace_s)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None, backlog=1024)
    await site.start()
    _tune_gc()
    reloader = Reloader(state, options.path, options.load)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    background: set[asyncio.Task[object]] = set()

    def on_hup() -> None:
        task = loop.create_task(reloader.reload("SIGHUP"))
        background.add(task)
        task.add_done_callback(background.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    watcher = loop.create_task(reloader.watch(options.watch_interval_s))
    log.info(
        "serving %d agents on http://%s:%d (table %s)",
        len(state.runtime.table.agents),
        host,
        port,
        state.runtime.table.hash,
    )
    await stop.wait()
    log.info("draining: up to %.1fs for %d requests in flight", grace_s, state.in_flight)
    watcher.cancel()
    await state.drain(grace_s)
    await runner.cleanup()
    return 0


def _tune_gc() -> None:
    """Start-up objects (modules, the table) move out of the collector's way, and young
    collections run less often: the request path allocates many short-lived objects, and cyclic
    GC passes over them were ~10% of the CPU per request in profiles (see README, Performance)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def _supervise(options: ServeOptions, host: str, port: int) -> int:
    children: list[int] = []
    for _ in range(options.workers):
        pid = os.fork()
        if pid == 0:
            table = options.load(options.path)
            os._exit(_run_worker(options, table, host, port, reuse_port=True))
        children.append(pid)

    def forward(signum: int, frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    status = 0
    for child in children:
        _, code = os.waitpid(child, 0)
        status = status or os.waitstatus_to_exitcode(code)
    return status
