"""The Gemini ingress's errors in Google's shape, before and after streaming began."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest
from google.genai import errors

from tests.fakes.gemini_upstream import (
    JsonReply,
    SseReply,
    candidate,
    google_error,
    response,
)
from tests.fakes.openai_upstream import Step, text_chunks
from tests.sidecar.protocols.gemini.helpers import (
    GENAI_WARNINGS,
    HI,
    MODEL,
    World,
    ask,
    gemini_client,
    post,
)

pytestmark = GENAI_WARNINGS


# --- errors in Google's shape ---------------------------------------------------------------------


async def test_upstream_400_comes_back_in_googles_shape(world: World) -> None:
    world.gemini.enqueue(
        JsonReply(google_error(400, "INVALID_ARGUMENT", "Invalid value at 'contents'"), status=400)
    )
    async with world.sidecar() as url:
        with pytest.raises(errors.ClientError) as caught:
            await ask(url, "native", "hi")
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert caught.value.message == "Invalid value at 'contents'"
    assert caught.value.details == {
        "error": {"code": 400, "message": "Invalid value at 'contents'", "status": "INVALID_ARGUMENT"}
    }


async def test_unknown_agent_is_404_not_found(world: World) -> None:
    async with world.sidecar() as url:
        with pytest.raises(errors.ClientError) as caught:
            await ask(url, "nobody", "hi")
    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")
    assert caught.value.details["error"]["details"] == [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "model_not_found",
            "domain": "astra-sidecar",
        },
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [
                {
                    "field": "model",
                    "description": "The model 'nobody' does not exist: it names no agent of this sidecar",
                }
            ],
        },
    ]


@pytest.mark.parametrize(
    ("target", "body", "status", "field"),
    [
        (":generateContent", b"{not json", 400, None),
        (":generateContent", [1, 2], 400, None),
        (":generateContent", {}, 400, "contents"),
        (":generateContent", {"contents": []}, 400, "contents"),
        (
            ":generateContent",
            {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
            400,
            "contents[0].role",
        ),
        (":generateContent", {"contents": [{"role": "user"}]}, 400, "contents[0].parts"),
        (":generateContent", {"contents": [{"role": "user", "parts": [{}]}]}, 400, "contents[0].parts[0]"),
        (
            ":generateContent",
            {"contents": [{"role": "model", "parts": [{"functionCall": {"args": {}}}]}]},
            400,
            "contents[0].parts[0].functionCall.name",
        ),
        (
            ":generateContent",
            {"contents": HI, "generationConfig": {"maxOutputTokens": "9"}},
            400,
            "generationConfig.maxOutputTokens",
        ),
        (
            ":generateContent",
            {"contents": HI, "generation_config": {}, "generationConfig": {}},
            400,
            "generationConfig",
        ),
        (
            ":generateContent",
            {"contents": HI, "tools": [{"functionDeclarations": [{}]}]},
            400,
            "tools[0].functionDeclarations[0].name",
        ),
        (
            ":generateContent",
            {"contents": HI, "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}},
            400,
            "toolConfig.functionCallingConfig.mode",
        ),
        (":streamGenerateContent", {"contents": HI}, 400, "alt"),
        (":predictLongRunning", {"contents": HI}, 404, None),
    ],
)
async def test_bad_requests_get_a_clear_google_error(
    world: World, target: str, body: Any, status: int, field: str | None
) -> None:
    async with world.sidecar() as url:
        got, payload = await post(url, f"/v1/gemini/native/v1beta/models/{MODEL}{target}", body)
    assert got == status
    error = payload["error"]
    assert error["code"] == status
    assert error["status"] == ("INVALID_ARGUMENT" if status == 400 else "NOT_FOUND")
    violations = [v for d in error.get("details", ()) for v in d.get("fieldViolations", ())]
    assert [v["field"] for v in violations] == ([field] if field else [])
    assert world.gemini.requests == []


async def test_native_stream_cut_ends_with_an_error_event(world: World) -> None:
    world.gemini.enqueue(SseReply([response([candidate([{"text": "Once upon"}], None)])]))
    async with world.sidecar() as url, gemini_client(url, "native") as client:
        stream = await client.aio.models.generate_content_stream(model=MODEL, contents="a story")
        received: list[str] = []
        with pytest.raises(errors.ServerError) as caught:
            async for chunk in stream:
                received.append(chunk.text or "")
    assert received == ["Once upon"]
    assert (caught.value.code, caught.value.status) == (502, "UNAVAILABLE")


async def test_error_event_in_the_first_read_is_the_http_error(world: World) -> None:
    """Nothing reached the client yet (both events come in one read), so the error is the answer."""
    world.gemini.enqueue(
        SseReply([response([candidate([{"text": "Once"}], None)]), google_error(500, "INTERNAL", "boom")])
    )
    async with world.sidecar() as url, gemini_client(url, "native") as client:
        received: list[Any] = []
        with pytest.raises(errors.ServerError) as caught:
            received += [
                c async for c in await client.aio.models.generate_content_stream(model=MODEL, contents="hi")
            ]
    assert received == []
    assert (caught.value.code, caught.value.status, caught.value.message) == (500, "INTERNAL", "boom")
    assert len(world.gemini.requests) == 1


async def test_translated_stream_cut_ends_with_an_error_event(world: World) -> None:
    world.openai.script = [Step("sse", chunks=text_chunks(["Once ", "upon ", "a time"]), cut_after=2)]
    async with world.sidecar() as url:
        status, raw = await _raw_stream(url, "on-openai")
    assert status == 200
    assert raw.endswith(
        b'data: {"error":{"code":502,"message":"upstream connection failed (ClientPayloadError)","status":"UNAVAILABLE","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"upstream_unreachable","domain":"astra-sidecar"}]}}\r\n\r\n'
    )
    assert raw.startswith(
        b'data: {"candidates":[{"content":{"role":"model","parts":[{"text":"Once "}]},"index":0}]'
    )


async def _raw_stream(
    url: str, agent: str, path_query: str = "?alt=sse", headers: Mapping[str, str] | None = None
) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{url}/v1/gemini/{agent}/v1/models/{MODEL}:streamGenerateContent{path_query}",
            json={"contents": HI},
            headers=headers,
        ) as answer,
    ):
        return answer.status, await answer.read()
