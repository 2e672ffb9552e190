"""The `world` every hostile-input test runs in (see `tests.sidecar.hostile.world`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.sidecar.hostile.world import World, hostile_world


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with hostile_world(tmp_path) as started:
        yield started
