"""Waiting on conditions instead of fixed sleeps: a free loopback port and `wait_until` for tests
that run `astra serve` as a real process, `eventually` for tests on the event loop."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Polls `predicate` (connection errors count as not yet) until true or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Polls `predicate` on the running loop (yielding to it in between) until true or `timeout`
    passes; true when it came true. The loop keeps running other tasks while this waits."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
