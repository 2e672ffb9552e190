"""The catch-all route of an ingress API (`/v1/anthropic/…`, `/v1/gemini/…`): a request no other
route serves is aiohttp's own 404, or 405 when another route serves that path with another
method, raised for the app's guard to answer in the API's shape (the route that matched names
it), naming the method and path, with the request's one access line (`sidecar/app.py`)."""

from __future__ import annotations

from typing import NoReturn

from aiohttp import hdrs, web


async def unknown_route(request: web.Request) -> NoReturn:
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not request.match_info.route.resource:
            methods = (await resource.resolve(request))[1]
            if hdrs.METH_ANY not in methods:  # another catch-all (or a probe) says nothing
                allowed |= methods
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()
