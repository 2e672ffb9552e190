"""The CPU work of a large request, done in one worker thread instead of on the event loop.

A body over `LARGE_BODY_BYTES` is parsed in slices on the loop (`astra_sidecar.sidecar.large_json`),
but then its parse into a call, its size estimate, the agent's policy, its upstream encoding and
its release each walk all of it: 8 MiB of small messages is about 100,000 objects and 10-50 ms
per step, and four such bodies at once kept a healthy request waiting 0.75 s
(docs/hardening.md, "No blocking callback"). Those steps run in this lane: one thread, so one
step at a time. The loop takes the GIL back within `SWITCH_INTERVAL_S` whenever it has work
(CPython's switch interval, lowered from its 5 ms default when the lane starts; with a single
thread running, as when no large body is in flight, it costs nothing), so only a C call that
holds the GIL throughout (orjson encoding 8 MiB: about 13 ms) delays it for longer.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from astra_sidecar.sidecar import large_json

T = TypeVar("T")

#: A request body this large has its CPU work done in the lane (the size above which it is
#: parsed in slices).
LARGE_BODY_BYTES = large_json.SLICE_ABOVE
SWITCH_INTERVAL_S = 0.001

_lane: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _lane
    if _lane is None:
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        _lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="astra-large-body")
    return _lane


async def run(work: Callable[[], T]) -> T:
    """`work()` in the lane (its exceptions are raised here). Callers call small requests' work
    themselves: a coroutine per step is a cost every request would pay."""
    return await asyncio.get_running_loop().run_in_executor(_executor(), work)


def release(box: list[object]) -> None:
    """Lets the lane drop what `box` holds: when those are the last references to a large
    request's objects, they are freed there, not in a callback of the loop."""
    _executor().submit(box.clear)
