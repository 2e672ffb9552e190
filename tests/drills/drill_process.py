"""Measuring the drill's process (see `tests.drills.drill`): file descriptors, RSS and
gc-tracked objects, and the ERROR log records it must not produce."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@dataclass
class MemorySample:
    requests: int
    rss_kib: int
    gc_objects: int
    fds: int
    traced_kib: int | None


def sample_memory(requests: int) -> MemorySample:
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] // 1024 if tracemalloc.is_tracing() else None
    return MemorySample(requests, rss_kib(), len(gc.get_objects()), open_fds(), traced)


class ErrorLogCounter(logging.Handler):
    """Counts ERROR records from the sidecar, aiohttp and asyncio (an escaped exception, a task
    exception never retrieved…): the drill expects none."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.first) < 5:
            error = f" ({record.exc_info[0].__name__}: {record.exc_info[1]})" if record.exc_info else ""
            self.first.append(f"{record.name}: {record.getMessage()}{error}")
            if os.environ.get("ASTRA_DRILL_TRACEBACKS"):
                logging.Formatter().format(record)
                print(record.exc_text, file=sys.stderr)


@contextlib.contextmanager
def counting_error_logs() -> Iterator[ErrorLogCounter]:
    """Counts ERROR records of those loggers (and keeps their WARNINGs, such as each breaker
    transition, out of the way) while the drill runs."""
    counter = ErrorLogCounter()
    loggers = [logging.getLogger(name) for name in ("astra", "aiohttp", "asyncio")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(counter)
        logger.setLevel(logging.ERROR)
    try:
        yield counter
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(counter)
            logger.setLevel(level)
