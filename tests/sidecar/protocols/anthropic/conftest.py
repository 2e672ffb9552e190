"""Fixtures of the Anthropic folder's tests (their helpers are in `helpers.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from astra_sidecar.sidecar.clock import ManualClock
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI
from tests.sidecar.harness import compile_yaml, running_sidecar
from tests.sidecar.protocols.anthropic.helpers import ENV, World, astra_yml


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    fake = FakeAnthropic()
    server = TestServer(fake.app())
    await server.start_server()
    openai_fake = await FakeOpenAI().start()
    table = compile_yaml(tmp_path, astra_yml(str(server.make_url("")).rstrip("/"), openai_fake.url))
    try:
        async with running_sidecar(table, env=ENV, clock=ManualClock()) as sidecar:
            world = World(fake, openai_fake, sidecar)
            yield world
            for client in world.clients:
                await client.close()
    finally:
        await openai_fake.close()
        await server.close()
