"""`astra serve`: load the table, serve it, reload on SIGHUP or file change, drain on SIGTERM.

With `--workers N` the parent forks N workers that share the port (SO_REUSEPORT); each has its
own breakers and pools. The parent forwards SIGTERM/SIGINT/SIGHUP and exits when they have; a
scrape of any worker shows the totals of all (`astra_sidecar.sidecar.metric_workers`, through a
temporary directory that lives as long as the parent).

Nothing here dies silently: a bind failure is one log line and exit 2; a failed reload is logged
and counted by the reloader; any other background task that fails, and anything the event loop
reports, is one JSON log line.

Tables come from the loader the caller passes (`astra_sidecar.cli` passes the compiler's), which
raises `TableLoadError` (or OSError) when a file gives no table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from astra_sidecar.compiler.table import RoutingTable, TableLoadError
from astra_sidecar.sidecar.accesslog import BufferedSink, configure_logging
from astra_sidecar.sidecar.app import create_app
from astra_sidecar.sidecar.app_keys import STATE
from astra_sidecar.sidecar.auth.google import VertexConfigError
from astra_sidecar.sidecar.limits import limits_from
from astra_sidecar.sidecar.metric_workers import FLUSH_INTERVAL_S, WorkerMetrics
from astra_sidecar.sidecar.reload import Reloader, TableLoader, describe

log = logging.getLogger("astra.sidecar")


@dataclass(frozen=True, slots=True)
class ServeOptions:
    path: str
    load: TableLoader
    host: str | None = None
    port: int | None = None
    workers: int = 1
    watch_interval_s: float = 1.0
    #: Set in each worker of `--workers N`: where the workers' metric snapshots meet.
    metrics_dir: str | None = None
    worker: int = 0


def serve_main(args: argparse.Namespace, load: TableLoader) -> int:
    """`astra serve` with the command line's arguments and the table loader to use."""
    options = ServeOptions(
        path=args.config, load=load, host=args.host, port=args.port, workers=max(1, args.workers)
    )
    return serve(options)


def serve(options: ServeOptions) -> int:
    """Exit status: 0 after a drain; 2 when the table cannot be loaded or served, or the address
    cannot be bound (each one log line)."""
    configure_logging()
    for signum in (signal.SIGTERM, signal.SIGINT):  # until the loop's own handlers replace them
        signal.signal(signum, _stop_before_serving)
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


def _stop_before_serving(signum: int, frame: object) -> None:
    """SIGTERM or SIGINT while the table loads or a worker starts: nothing is served yet, so
    nothing to drain; a clean exit (a worker forked by `--workers` has this handler too, so the
    parent's forwarded SIGTERM never kills one half-started)."""
    log.info("stopped by %s before serving", signal.Signals(signum).name)
    logging.shutdown()
    os._exit(0)


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
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_log_loop_error)
    try:
        app = create_app(table, source_path=options.path, access_sink=BufferedSink())
    except VertexConfigError as exc:  # e.g. a Vertex AI cluster without the `vertex` extra
        log.error("cannot serve %s: %s", options.path, exc)
        return 2
    state = app[STATE]
    grace_s = state.runtime.table.settings.drain_grace_ms / 1000.0
    runner = web.AppRunner(app, **server_settings(state.runtime.table))
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None, backlog=1024)
    try:
        await site.start()
    except OSError as exc:  # port in use, address not available, unknown host
        log.error("cannot listen on %s:%d: %s", host, port, exc.strerror or exc)
        await runner.cleanup()
        return 2
    _tune_gc()
    reloader = Reloader(state, options.path, options.load)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    background = _Background(loop)
    loop.add_signal_handler(signal.SIGHUP, lambda: background.start(reloader.reload("SIGHUP")))
    watcher = background.start(reloader.watch(options.watch_interval_s))
    if options.metrics_dir is not None:
        workers = state.shared.metrics.share_with(options.metrics_dir, options.worker)
        background.start(_flush_metrics(workers))
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
    background.cancel()
    await state.drain(grace_s)
    await runner.cleanup()
    return 0


#: After an answer, how long aiohttp reads and drops the unread rest of a request body before it
#: closes the connection (aiohttp's default is 10 s).
LINGERING_S = 2.0


def server_settings(table: RoutingTable) -> dict[str, Any]:
    """aiohttp's server settings (`web.AppRunner` arguments) for `table` (docs/hardening.md, "Clients").

    aiohttp's keep-alive timer closes a connection whose handler still waits for a complete
    request head: it starts when the connection opens and again after each answer, and bytes of
    a partial head do not push it back. So `clientHeaderTimeoutMs` bounds a slow-header client
    and an idle kept-alive connection alike. Read at start: a reload does not change it."""
    limits = limits_from(table.settings.limits)
    return {
        "handler_cancellation": True,
        "access_log": None,
        "shutdown_timeout": table.settings.drain_grace_ms / 1000.0,
        "keepalive_timeout": limits.client_header_timeout_ms / 1000.0,
        "lingering_time": LINGERING_S,
    }


class _Background:
    """Tasks the server runs beside requests; one that fails is logged as JSON and counted."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._tasks: set[asyncio.Task[object]] = set()
        self.failures = 0

    def start(self, work: Coroutine[Any, Any, object]) -> asyncio.Task[object]:
        task = self._loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        self.failures += 1
        exc = task.exception()
        log.error("background task %s failed: %s", task.get_coro().__qualname__, describe(exc), exc_info=exc)  # type: ignore[union-attr,arg-type]

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()


async def _flush_metrics(workers: WorkerMetrics) -> None:
    """Keeps this worker's part of the merged scrape at most one interval old."""
    while True:
        await asyncio.sleep(FLUSH_INTERVAL_S)
        try:
            await asyncio.to_thread(workers.flush)
        except OSError as exc:
            log.error("cannot write the metrics of worker %d: %s", workers.worker, describe(exc))


def _log_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's own complaints (a callback that raised …) as one JSON line, like every log line."""
    exc = context.get("exception")
    log.error("event loop: %s", context.get("message", "error"), exc_info=exc)


def _tune_gc() -> None:
    """Start-up objects (modules, the table) move out of the collector's way, and young
    collections run less often: the request path allocates many short-lived objects, and cyclic
    GC passes over them were ~10% of the CPU per request in profiles (see README, Performance)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def _supervise(options: ServeOptions, host: str, port: int) -> int:
    with tempfile.TemporaryDirectory(prefix="astra-metrics-") as metrics_dir:
        return _fork_workers(options, host, port, metrics_dir)


def _fork_workers(options: ServeOptions, host: str, port: int, metrics_dir: str) -> int:
    children: list[int] = []
    for worker in range(options.workers):
        pid = os.fork()
        if pid == 0:
            mine = dataclasses.replace(options, metrics_dir=metrics_dir, worker=worker)
            os._exit(_child(mine, host, port))
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


def _child(options: ServeOptions, host: str, port: int) -> int:
    try:
        table = options.load(options.path)
    except (TableLoadError, OSError) as exc:
        log.error("worker %d: cannot load %s: %s", options.worker, options.path, describe(exc))
        return 2
    return _run_worker(options, table, host, port, reuse_port=True)
