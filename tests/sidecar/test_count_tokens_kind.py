"""A count request names a chat agent: on an embedding agent both count routes answer 400
`wrong_agent_kind` in their own API's shape, before any upstream call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from tests.sidecar.harness import compile_yaml, running_sidecar

CONFIG = """
version: 1
agents:
  search:
    model: {provider: openai, modelId: text-embedding-3-small, kind: embedding, endpoint: "http://127.0.0.1:9"}
"""


async def _post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
        return response.status, await response.json(content_type=None)


async def test_count_routes_refuse_an_embedding_agent_in_their_shape(tmp_path: Path) -> None:
    async with running_sidecar(compile_yaml(tmp_path, CONFIG), env={"OPENAI_API_KEY": "k"}) as sidecar:
        anthropic = await _post(
            sidecar.url + "/v1/anthropic/search/v1/messages/count_tokens",
            {"model": "x", "messages": [{"role": "user", "content": "hi"}]},
        )
        gemini = await _post(
            sidecar.url + "/v1/gemini/search/v1beta/models/x:countTokens",
            {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        )
    message = "agent 'search' is an embedding agent: it serves embeddings (POST /v1/embeddings), not chat"
    assert anthropic == (
        400,
        {"type": "error", "error": {"type": "invalid_request_error", "message": message}},
    )
    assert gemini[0] == 400
    assert (gemini[1]["error"]["status"], gemini[1]["error"]["message"]) == ("INVALID_ARGUMENT", message)
