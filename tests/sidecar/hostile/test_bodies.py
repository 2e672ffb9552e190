"""Hostile bodies on every route: a clear 4xx in the route's own error shape (never a 500 or a
traceback) and no upstream request; limits hold for plain, chunked and compressed bodies.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.sidecar.hostile.world import (
    MAX_BODY,
    ROUTES,
    Route,
    World,
    post,
)

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")


def _bad_bodies() -> list[tuple[Route, bytes]]:
    cases: list[tuple[Route, bytes]] = []
    for route in ROUTES:
        cases += [
            (route, raw) for raw in (b"{not json", b"", b"[1, 2]", b'"text"', b"42", b"\xff\xfe{}", b"null")
        ]
        cases += [(route, json.dumps(body).encode()) for body in route.bad]
    return cases


@pytest.mark.parametrize(("route", "raw"), _bad_bodies(), ids=lambda v: str(v)[:40])
async def test_bad_bodies_get_a_400_in_the_routes_shape(world: World, route: Route, raw: bytes) -> None:
    status, body = await post(world, route.path, raw)
    assert status == 400, body
    route.shape(status, body)
    assert world.upstream_requests() == 0


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_the_good_body_is_answered(world: World, route: Route) -> None:
    status, _ = await post(world, route.path, json.dumps(route.good).encode())
    assert status == 200
    assert world.upstream_requests() == 1


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_deeply_nested_json_is_a_400_not_a_500(world: World, route: Route) -> None:
    """JSON nested past ~255 levels cannot be re-encoded (orjson): refused at the door."""
    nested = "[" * 300 + "]" * 300
    raw = json.dumps(route.good)[:-1].encode() + b', "metadata": ' + nested.encode() + b"}"
    status, body = await post(world, route.path, raw)
    assert status == 400
    route.shape(status, body)
    assert "nested more than 100 levels" in json.dumps(body)
    assert world.upstream_requests() == 0


@pytest.mark.parametrize("route", ROUTES, ids=str)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_bodies_over_max_body_bytes_are_413(world: World, route: Route, chunked: bool) -> None:
    good = dict(route.good)
    raw = json.dumps({**good, "padding": "x" * (MAX_BODY * 2)}).encode()

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 1000):
            yield raw[start : start + 1000]

    async with (
        aiohttp.ClientSession() as http,
        http.post(world.sidecar.url + route.path, data=pieces() if chunked else raw) as response,
    ):
        body = await response.json(content_type=None)
    assert response.status == 413
    route.shape(413, body)
    assert world.upstream_requests() == 0


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_content_encoding_bodies(world: World, route: Route) -> None:
    """A gzip body is read (and limited) after decompression; one that is not gzip is a 400."""
    good = json.dumps(route.good).encode()
    bomb = json.dumps({**route.good, "padding": " " * (64 * MAX_BODY)}).encode()
    answers = []
    for data in (gzip.compress(good), gzip.compress(bomb), good):
        answers.append(await post(world, route.path, data, {"Content-Encoding": "gzip"}))
    assert [status for status, _ in answers] == [200, 413, 400]
    for status, body in answers[1:]:
        route.shape(status, body)
    assert world.upstream_requests() == 1
