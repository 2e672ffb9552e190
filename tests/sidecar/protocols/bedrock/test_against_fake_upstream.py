"""The Bedrock adapter against the fake Bedrock over HTTP: signatures accepted and rejected,
streams chunked and cut, error statuses classified, and every translated body validated."""

from __future__ import annotations

import dataclasses
from typing import Any

import aiohttp
import orjson
import pytest
import yarl
from openai.types.chat import ChatCompletionChunk

from astra_sidecar.compiler.table import Cluster, PromptCache
from astra_sidecar.sidecar.errors import UpstreamStreamError
from astra_sidecar.sidecar.protocols.base import AuthMaterial, AwsCredentials, Secret
from tests.fakes import bedrock_upstream as fake
from tests.fakes.bedrock_upstream import (
    Answer,
    BedrockUpstream,
    Cut,
    Error,
    Stream,
    stream_frames,
    text_response,
)
from tests.sidecar.protocols.bedrock.helpers import (
    ADAPTER,
    AGENT,
    AUTH,
    ENCODED_MODEL,
    HISTORY,
    MODEL,
    PNG,
    RESPONSES,
    chat,
    make_agent,
    make_cluster,
    plain,
    reassemble,
    user,
    weather_tool,
)


@pytest.fixture
async def upstream(aiohttp_server: Any) -> tuple[BedrockUpstream, Cluster]:
    bedrock = BedrockUpstream()
    server = await aiohttp_server(bedrock.app)
    return bedrock, make_cluster(base_url=str(server.make_url("")).rstrip("/"))


async def _post(request: Any, url: yarl.URL | str | None = None) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session:
        target = url if url is not None else yarl.URL(request.url, encoded=True)
        async with session.post(target, data=request.body, headers=request.headers) as response:
            return response.status, dict(response.headers), await response.read()


async def test_fake_accepts_the_signed_request_and_sees_double_encoding(upstream: Any) -> None:
    bedrock, cluster = upstream
    bedrock.script(Answer(text_response("signed ok")))
    request = ADAPTER.build_request(cluster, AGENT, chat(user("Hi")), AUTH)
    status, _headers, raw = await _post(request)
    assert status == 200
    assert (
        orjson.loads(ADAPTER.parse_response(cluster, chat(user("Hi")), raw).body)["choices"][0]["message"][
            "content"
        ]
        == "signed ok"
    )
    received = bedrock.requests[0]
    assert received.raw_path == f"/model/{ENCODED_MODEL}/converse"
    assert received.model_id == MODEL
    assert received.canonical_request is not None
    assert (
        received.canonical_request.splitlines()[1]
        == "/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse"
    )
    assert received.validation_errors is None


async def test_fake_rejects_a_bad_signature_like_aws(upstream: Any) -> None:
    _bedrock, cluster = upstream
    wrong = AuthMaterial(aws=AwsCredentials(fake.TEST_ACCESS_KEY, Secret("not-the-secret")))
    status, headers, raw = await _post(ADAPTER.build_request(cluster, AGENT, chat(user("Hi")), wrong))
    assert status == 403
    assert headers["x-amzn-ErrorType"].startswith("InvalidSignatureException:")
    failure = ADAPTER.classify_error(cluster, status, headers, raw)
    assert (failure.status, failure.code, failure.retryable) == (403, "InvalidSignatureException", False)


async def test_fake_rejects_a_tampered_body(upstream: Any) -> None:
    bedrock, cluster = upstream
    request = ADAPTER.build_request(cluster, AGENT, chat(user("Hi")), AUTH)
    request = dataclasses.replace(request, body=request.body.replace(b"Hi", b"Yo"))
    status, headers, _raw = await _post(request)
    assert (status, bedrock.requests) == (403, [])
    assert headers["x-amzn-ErrorType"].startswith("InvalidSignatureException")


async def test_a_renormalised_url_breaks_the_signature(upstream: Any) -> None:
    """Why the I/O layer must send `yarl.URL(url, encoded=True)`: yarl turns %3A into ':'."""
    _bedrock, cluster = upstream
    request = ADAPTER.build_request(cluster, AGENT, chat(user("Hi")), AUTH)
    status, _headers, _raw = await _post(request, url=request.url)
    assert status == 403


async def test_fake_accepts_a_bedrock_api_key(upstream: Any) -> None:
    _bedrock, cluster = upstream
    auth = AuthMaterial(token=Secret(fake.TEST_BEARER_TOKEN))
    status, _headers, _raw = await _post(ADAPTER.build_request(cluster, AGENT, chat(user("Hi")), auth))
    assert status == 200
    bad = AuthMaterial(token=Secret("ABSK-wrong"))
    status, headers, _raw = await _post(ADAPTER.build_request(cluster, AGENT, chat(user("Hi")), bad))
    assert (status, headers["x-amzn-ErrorType"].split(":")[0]) == (403, "UnrecognizedClientException")


async def test_stream_over_http_with_awkward_chunking(upstream: Any) -> None:
    bedrock, cluster = upstream
    response = RESPONSES["parallel_tools"]
    bedrock.script(Stream(stream_frames(response, piece=2), chunk=5))
    body = chat(user("Hi"), stream=True, stream_options={"include_usage": True}, tools=[weather_tool()])
    request = ADAPTER.build_request(cluster, AGENT, body, AUTH)
    translator = ADAPTER.stream_translator(cluster, body)
    raw: list[bytes] = []
    async with (
        aiohttp.ClientSession() as session,
        session.post(yarl.URL(request.url, encoded=True), data=request.body, headers=request.headers) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/vnd.amazon.eventstream"
        async for data in resp.content.iter_any():
            raw.extend(translator.feed(data))
    raw.extend(translator.finish())
    chunks = [ChatCompletionChunk.model_validate_json(c) for c in raw]
    assert reassemble(chunks[:-1]) == plain(response)
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 15
    assert bedrock.requests[0].operation == "converse-stream"


async def test_cut_connection_mid_stream(upstream: Any) -> None:
    bedrock, cluster = upstream
    frames = stream_frames(text_response("abcdef"))
    bedrock.script(Cut(b"".join(frames[:2]) + frames[2][:5]))
    body = chat(user("Hi"), stream=True)
    request = ADAPTER.build_request(cluster, AGENT, body, AUTH)
    translator = ADAPTER.stream_translator(cluster, body)
    out: list[bytes] = []
    async with (
        aiohttp.ClientSession() as session,
        session.post(yarl.URL(request.url, encoded=True), data=request.body, headers=request.headers) as resp,
    ):
        with pytest.raises(aiohttp.ClientPayloadError):
            async for data in resp.content.iter_any():
                out.extend(translator.feed(data))
    with pytest.raises(UpstreamStreamError):
        translator.finish()
    assert len(out) == 2


async def test_error_status_from_the_fake_classifies(upstream: Any) -> None:
    bedrock, cluster = upstream
    bedrock.script(
        Error(429, "ThrottlingException", "Too many requests"),
        Error(400, "ServiceQuotaExceededException", in_body=True),
    )
    request = ADAPTER.build_request(cluster, AGENT, chat(user("Hi")), AUTH)
    first = ADAPTER.classify_error(cluster, *(await _post(request)))
    second = ADAPTER.classify_error(cluster, *(await _post(request)))
    assert (first.status, first.code, first.retryable, first.message) == (
        429,
        "ThrottlingException",
        True,
        "Too many requests",
    )
    assert (second.status, second.code, second.retryable) == (429, "insufficient_quota", False)


async def test_every_translated_body_passes_the_fakes_validation(upstream: Any) -> None:
    bedrock, cluster = upstream
    bodies = [
        chat(*HISTORY, tools=[weather_tool()], tool_choice="required", temperature=2, stop="x", max_tokens=9),
        chat(
            user(
                [
                    {"type": "text", "text": "see"},
                    {"type": "image_url", "image_url": {"url": f"data:image/webp;base64,{PNG}"}},
                ]
            )
        ),
        chat(
            {"role": "system", "content": "s"},
            user("x"),
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "n", "schema": {"type": "object"}},
            },
        ),
    ]
    agent = make_agent(prompt_cache=PromptCache(system_prompt=True, tools=True))
    for body in bodies:
        status, _headers, raw = await _post(ADAPTER.build_request(cluster, agent, body, AUTH))
        assert status == 200, raw
    assert [r.validation_errors for r in bedrock.requests] == [None, None, None]
