"""Typed keys for what the aiohttp app carries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:  # the state imports the protocols, whose routes read this key
    from astra_sidecar.sidecar.state import AppState

STATE: web.AppKey[AppState] = web.AppKey("astra_state")
