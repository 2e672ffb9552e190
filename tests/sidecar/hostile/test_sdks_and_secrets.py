"""The official SDKs get hostile input's 4xx as typed errors, and keys (the sidecar's, the
caller's) appear in no answer, header, log record or metric.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import aiohttp
import anthropic
import openai
import pytest
from google import genai
from google.genai import types

from tests.fakes.openai_upstream import FakeOpenAI, error
from tests.sidecar.harness import compile_yaml, running_sidecar
from tests.sidecar.hostile.world import (
    USER,
    World,
)

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")


# --- the official SDKs get the same 4xx as typed errors ---------------------------------------------


async def test_sdks_get_typed_errors_for_bad_input(world: World) -> None:
    with pytest.raises(openai.BadRequestError):
        await world.sidecar.client().chat.completions.create(model="oa", messages=[])
    client = anthropic.AsyncAnthropic(
        base_url=f"{world.sidecar.url}/v1/anthropic/cl", api_key="k", max_retries=0
    )
    with pytest.raises(anthropic.BadRequestError):
        await client.messages.create(model="m", max_tokens=10, messages=[])
    await client.close()
    gemini = genai.Client(
        api_key="k", http_options=types.HttpOptions(base_url=f"{world.sidecar.url}/v1/gemini/ge")
    )
    try:
        with pytest.raises(genai.errors.ClientError) as caught:
            await gemini.aio.models.generate_content(
                model="m", contents=[types.Content(role="user", parts=[])]
            )
    finally:
        await gemini.aio.aclose()
    assert caught.value.code == 400
    assert world.upstream_requests() == 0


# --- secrets ---------------------------------------------------------------------------------------

CANARY = "sk-CANARY-5e1f0c9a7d3b"
CALLER_CANARY = "sk-CALLER-CANARY-2b8d4f6a"


async def test_a_canary_key_appears_in_no_answer_log_or_metric(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The sidecar's key, echoed back by an upstream that refuses it, and the caller's key in its
    headers, reach no answer, header, log record or metric."""
    caplog.set_level(logging.DEBUG)
    upstream = await FakeOpenAI(
        error(401, f"Incorrect API key provided: {CANARY}.", code="invalid_api_key")
    ).start()
    seen: list[str] = []
    try:
        table = compile_yaml(
            tmp_path,
            f"agents:\n  oa: {{model: {{provider: openai, modelId: m, endpoint: '{upstream.url}'}}}}\n",
        )
        async with (
            running_sidecar(table, env={"OPENAI_API_KEY": CANARY}) as sidecar,
            aiohttp.ClientSession() as http,
        ):
            headers = {"Authorization": f"Bearer {CALLER_CANARY}", "x-api-key": CALLER_CANARY}
            for data in (json.dumps({"model": "oa", "messages": USER}).encode(), b"{bad", b"[" * 300):
                async with http.post(
                    sidecar.url + "/v1/chat/completions", data=data, headers=headers
                ) as response:
                    seen += [await response.text(), str(dict(response.headers))]
                    assert response.status in (400, 401)
            seen.append(sidecar.state.shared.metrics.render().decode())
    finally:
        await upstream.close()
    assert upstream.received[0].headers["Authorization"] == f"Bearer {CANARY}"
    assert "Incorrect API key provided: [redacted]." in seen[0]
    assert len([r for r in caplog.records if r.name == "astra.access"]) == 3
    seen += [record.getMessage() + repr(vars(record)) for record in caplog.records]
    assert [text for text in seen if CANARY in text or CALLER_CANARY in text] == []
