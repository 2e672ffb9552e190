"""Typed keys for what the aiohttp app carries."""

from __future__ import annotations

from aiohttp import web

from sidecar.state import AppState

STATE = web.AppKey("astra_state", AppState)
