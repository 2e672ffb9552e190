"""Build a sidecar from astra.yml text and talk to it the way apps do (official SDKs, real sockets)."""

from __future__ import annotations

import random
import textwrap
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import openai
from aiohttp import web
from aiohttp.test_utils import TestServer

from compiler.loader import load_routing_table
from compiler.table import RoutingTable
from sidecar.app import create_app
from sidecar.app_keys import STATE
from sidecar.clock import Clock, ManualClock
from sidecar.state import AppState


def compile_yaml(tmp_path: Path, text: str, name: str = "astra.yml") -> RoutingTable:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return load_routing_table(path)


@dataclass
class Sidecar:
    server: TestServer
    app: web.Application
    clock: Clock

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def state(self) -> AppState:
        return self.app[STATE]

    def client(self, api_key: str = "sk-client") -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=api_key, max_retries=0, timeout=20)

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
    try:
        yield Sidecar(server, app, clock)
    finally:
        await server.close()
