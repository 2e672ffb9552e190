"""Build a sidecar from astra.yml text and talk to it the way apps do (official SDKs, real sockets).

Every SDK client `Sidecar.client()` hands out is closed when `running_sidecar` exits. An unclosed
`AsyncOpenAI` closes itself from `__del__` by scheduling `aclose()` on whatever loop is running
when the garbage collector gets to it (openai's `_base_client.py`), which may be a later test's
loop: that test then sees a task it did not start, and "Event loop is closed" errors from
transports of the loop the client was used on."""

from __future__ import annotations

import random
import textwrap
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import openai
from aiohttp import web
from aiohttp.test_utils import TestServer

from astra_sidecar.compiler.loader import load_routing_table
from astra_sidecar.compiler.table import RoutingTable
from astra_sidecar.sidecar.app import create_app
from astra_sidecar.sidecar.app_keys import STATE
from astra_sidecar.sidecar.clock import Clock, ManualClock
from astra_sidecar.sidecar.state import AppState


def compile_yaml(tmp_path: Path, text: str, name: str = "astra.yml") -> RoutingTable:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return load_routing_table(path)


@dataclass
class Sidecar:
    server: TestServer
    app: web.Application
    clock: Clock
    clients: list[openai.AsyncOpenAI] = field(default_factory=list)

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def state(self) -> AppState:
        return self.app[STATE]

    def client(self, api_key: str = "sk-client", *, base_path: str = "/v1") -> openai.AsyncOpenAI:
        """The official OpenAI SDK pointed at this sidecar; closed when the sidecar stops."""
        client = openai.AsyncOpenAI(base_url=self.url + base_path, api_key=api_key, max_retries=0, timeout=20)
        self.clients.append(client)
        return client

    async def close_clients(self) -> None:
        while self.clients:
            await self.clients.pop().close()

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        value = self.state.shared.metrics.registry.get_sample_value(name, dict(labels or {}))
        return value or 0.0


@asynccontextmanager
async def running_sidecar(
    table: RoutingTable,
    *,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    seed: int = 7,
) -> AsyncIterator[Sidecar]:
    clock = clock or ManualClock()
    app = create_app(table, env=dict(env or {}), clock=clock, rng=random.Random(seed))
    server = TestServer(app)
    await server.start_server()
    sidecar = Sidecar(server, app, clock)
    try:
        yield sidecar
    finally:
        await sidecar.close_clients()
        await server.close()
