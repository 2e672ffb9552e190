"""Gemini generateContent ingress (being written)."""

from __future__ import annotations

from aiohttp import web


def add_routes(app: web.Application) -> None:
    """Registers this ingress's routes on the sidecar app."""
