"""The fake Anthropic API (`tests/fakes/anthropic_upstream.py`) with what coding agents use on top:
`POST /v1/messages/count_tokens` (https://docs.anthropic.com/en/api/messages-count-tokens: only
`model`, `messages`, `system`, `tools`, `tool_choice`, `thinking`, `mcp_servers`; anything else is
a 400 "Extra inputs are not permitted"), and `{"role": "system"}` messages inside `messages` when
the `anthropic-beta` header carries a flag Claude Code sends them under (`SYSTEM_TURN_BETAS`: the
mid-conversation-system flag, or `per-turn-control-2026-07-01`, which Claude Code 2.1.332 sends
instead); the rest of the body is checked as for any request."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.fakes.anthropic_upstream import (
    ErrorReply,
    FakeAnthropic,
    Recorded,
    _error_response,
    validate_request,
)

COUNT_FIELDS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers"})
MID_CONVERSATION = "mid-conversation-system-2026-04-07"
SYSTEM_TURN_BETAS = ("mid-conversation-system-", "per-turn-control-")


def counted_tokens(body: dict[str, Any]) -> int:
    """The fake's count: a stable function of the body (not Anthropic's tokenizer)."""
    return 7 + len(json.dumps([body.get("system"), body.get("messages"), body.get("tools")])) // 5


class CodingAnthropic(FakeAnthropic):
    def __init__(self) -> None:
        super().__init__()
        self.counts: list[Recorded] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages/count_tokens", self._count)
        app.router.add_post("/v1/messages", self._beta_messages)
        return app

    async def _beta_messages(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        headers = {k.lower(): v for k, v in request.headers.items()}
        messages = body.get("messages") if isinstance(body, dict) else None
        system_inside = isinstance(messages, list) and any(m.get("role") == "system" for m in messages)
        if not system_inside:
            return await self._messages(request)
        flags = [flag.strip() for flag in headers.get("anthropic-beta", "").split(",")]
        if not any(flag.startswith(SYSTEM_TURN_BETAS) for flag in flags):
            self.requests.append(Recorded(request.path, headers, body))
            return _error_response(
                ErrorReply(
                    400, "invalid_request_error", "messages.1.role: Input should be 'user' or 'assistant'"
                )
            )
        rest = {**body, "messages": [m for m in messages if m.get("role") != "system"]}
        problem = validate_request(headers, rest)
        if problem:
            self.requests.append(Recorded(request.path, headers, body))
            return _error_response(ErrorReply(*problem))
        self.validate, checked = False, self.validate
        try:
            return await self._messages(request)
        finally:
            self.validate = checked

    async def _count(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.counts.append(Recorded(request.path, headers, body))
        extra = sorted(set(body) - COUNT_FIELDS)
        if extra:
            return _error_response(
                ErrorReply(400, "invalid_request_error", f"{extra[0]}: Extra inputs are not permitted")
            )
        if not isinstance(body.get("model"), str) or not body.get("messages"):
            return _error_response(
                ErrorReply(400, "invalid_request_error", "model and messages are required")
            )
        return web.json_response({"input_tokens": counted_tokens(body)})
