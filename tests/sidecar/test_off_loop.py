"""`off_loop`: a large request's CPU work and release run in the lane's thread."""

from __future__ import annotations

import asyncio
import sys
import threading
import weakref

import pytest

from astra_sidecar.sidecar.serving import off_loop


def _thread_name() -> str:
    return threading.current_thread().name


async def test_the_work_of_a_large_request_runs_in_the_lane() -> None:
    assert (await off_loop.run(_thread_name)).startswith("astra-large-body")
    assert sys.getswitchinterval() <= off_loop.SWITCH_INTERVAL_S


async def test_an_error_in_the_lane_is_raised_to_the_caller() -> None:
    def refuse() -> None:
        raise ValueError("not a chat body")

    with pytest.raises(ValueError, match="not a chat body"):
        await off_loop.run(refuse)


class _Body:
    """Stands for a large request's objects: notes the thread that frees it."""


async def test_a_released_request_is_freed_in_the_lane() -> None:
    freed: list[str] = []
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    def note(_: object) -> None:
        freed.append(_thread_name())
        loop.call_soon_threadsafe(done.set)

    body = _Body()
    watch = weakref.ref(body, note)
    box: list[object] = [body]
    del body
    off_loop.release(box)
    await asyncio.wait_for(done.wait(), 5)
    assert watch() is None
    assert freed[0].startswith("astra-large-body")
