"""Hostile upstreams through the whole sidecar: every answer over a read limit, a redirect or an
encoding the sidecar did not ask for is one clean 502 in OpenAI's shape (or, once a stream has
begun, its one final error event), tried once (not retried), with its own `too_large` attempt outcome; a redirect's `Location` goes nowhere; the
upstream connection is let go; and the sidecar answers a healthy agent right after."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.processes import eventually
from tests.sidecar.harness import compile_yaml
from tests.sidecar.hostile.served import Served, served
from tests.sidecar.hostile.upstreams import METADATA_URL, HostileUpstream

HOSTILE = {
    # kind: (stream?, expected error code)
    "endless-json": (False, "upstream_too_large"),
    "huge-json": (False, "upstream_too_large"),
    "gzip-bomb": (False, "upstream_too_large"),
    "gzip-bomb-stream": (True, "upstream_too_large"),
    "sse-line": (True, "upstream_too_large"),
    "headers": (False, "upstream_too_large"),
    "redirect": (False, "upstream_refused"),
    "brotli": (False, "upstream_refused"),
}


def _yml(upstream: HostileUpstream) -> str:
    agents = "\n".join(
        f'  {kind}: {{model: {{provider: vllm, modelId: m, endpoint: "{upstream.url(kind)}"}}}}'
        for kind in (*HOSTILE, "good")
    )
    return f"""
version: 1
settings:
  retry: {{maxRetries: 2, baseDelayMs: 1, maxDelayMs: 1}}
  limits: {{maxAnswerBytes: 4194304, maxDecompressedBytes: 4194304, maxSseLineBytes: 1048576}}
agents:
{agents}
"""


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Served, HostileUpstream]]:
    upstream = await HostileUpstream().start()
    try:
        async with served(compile_yaml(tmp_path, _yml(upstream))) as sidecar:
            yield sidecar, upstream
    finally:
        await upstream.close()


async def _chat(sidecar: Served, agent: str, stream: bool) -> tuple[int, dict[str, str], bytes]:
    body = {"model": agent, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            sidecar.url + "/v1/chat/completions", json=body, timeout=aiohttp.ClientTimeout(total=30)
        ) as r,
    ):
        return r.status, dict(r.headers), await r.read()


@pytest.mark.parametrize("kind", list(HOSTILE))
async def test_a_hostile_answer_is_one_clean_502_tried_once(
    world: tuple[Served, HostileUpstream], kind: str
) -> None:
    sidecar, upstream = world
    stream, code = HOSTILE[kind]
    status, headers, raw = await _chat(sidecar, kind, stream)
    if stream:  # a first good event commits the stream: the refusal is its last event
        assert status == 200 and raw.startswith(b"data: ") and raw.endswith(b"\n\n"), raw[:300]
        error = json.loads(raw.rstrip().rsplit(b"\n\n", 1)[-1].removeprefix(b"data: "))["error"]
    else:
        assert status == 502, raw[:300]
        error = json.loads(raw)["error"]
    assert error["code"] == code and set(error) == {"message", "type", "param", "code"}
    assert headers["x-astra-attempts"] == "1" and upstream.requests[kind] == 1
    # An attempt is counted once, by how it ended: a stream that began and was then refused too.
    assert (
        sidecar.metric(
            "astra_upstream_attempts_total", {"agent": kind, "provider": "vllm", "outcome": "too_large"}
        )
        == 1
    )
    assert "Location" not in headers and METADATA_URL.encode() not in raw
    assert b"Traceback" not in raw
    # The upstream connection was let go: a body still being sent sees its reader leave.
    if kind in ("endless-json", "huge-json", "sse-line"):
        assert await eventually(lambda: upstream.cut[kind] == 1)
    assert (await _chat(sidecar, "good", False))[0] == 200
    assert [r["error_code"] for r in sidecar.access.records() if r.get("agent") == kind] == [code]
