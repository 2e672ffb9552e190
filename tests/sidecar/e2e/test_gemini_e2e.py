"""Gemini end to end: the official `openai` SDK → the sidecar → the fake Gemini upstream.

astra.yml is compiled from tmp_path; the fake runs on a real loopback port. AI Studio mode uses
GEMINI_API_KEY; Vertex AI mode (configured in astra.yml, or switched on by the
ASTRA_GEMINI_VERTEX_AI_* variables) gets its bearer token from a real service-account key made in
the test and the fake's OAuth token endpoint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.gemini_upstream import (
    FakeGemini,
    FakeGoogleOAuth,
    JsonReply,
    SseReply,
    candidate,
    function_call_response,
    google_error,
    new_rsa_key,
    response,
    text_response,
    text_stream,
    usage_metadata,
    write_service_account,
)
from tests.sidecar.harness import compile_yaml, running_sidecar

MODEL = "gemini-2.5-flash"
KEY_ENV = {"GEMINI_API_KEY": "g-key"}
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def ai_studio_yaml(url: str) -> str:
    return f"""
        version: 1
        agents:
          helper:
            model: {{provider: gemini, modelId: {MODEL}, endpoint: "{url}"}}
            retry: {{maxRetries: 1, baseDelayMs: 1}}
          rescued:
            model:
              provider: gemini
              modelId: {MODEL}
              endpoint: "{url}"
              fallback: {{provider: mock, modelId: backup, mock: {{reply: "from the fallback"}}}}
            retry: {{maxRetries: 0}}
        """


def vertex_yaml(url: str, credentials_file: Path) -> str:
    return f"""
        version: 1
        providers:
          gemini:
            vertex: {{project: proj-1, location: us-central1, credentialsFile: "{credentials_file}"}}
        agents:
          helper:
            model: {{provider: gemini, modelId: {MODEL}, endpoint: "{url}"}}
        """


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return new_rsa_key()


@pytest.fixture
async def upstream(rsa_key: rsa.RSAPrivateKey) -> AsyncIterator[tuple[FakeGemini, str]]:
    fake = FakeGemini(api_key="g-key", oauth=FakeGoogleOAuth(rsa_key.public_key()))
    server = TestServer(fake.app())
    await server.start_server()
    try:
        yield fake, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def user(text: str) -> Any:
    return {"role": "user", "content": text}


# --- AI Studio -----------------------------------------------------------------------------------


async def test_ai_studio_plain_answer_and_usage(tmp_path: Path, upstream: tuple[FakeGemini, str]) -> None:
    fake, url = upstream
    fake.enqueue(JsonReply(text_response("Bonjour!", usage=usage_metadata(120, 8, cached=100, thoughts=30))))
    async with running_sidecar(compile_yaml(tmp_path, ai_studio_yaml(url)), env=KEY_ENV) as sidecar:
        answer = await sidecar.client().chat.completions.create(
            model="helper",
            messages=[{"role": "system", "content": "Answer in French."}, user("Hello")],
            max_tokens=50,
            stop=["END"],
        )
    assert answer.choices[0].message.content == "Bonjour!"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (
        120,
        38,
        158,
    )
    assert answer.usage.prompt_tokens_details is not None
    assert answer.usage.prompt_tokens_details.cached_tokens == 100
    assert answer.usage.completion_tokens_details is not None
    assert answer.usage.completion_tokens_details.reasoning_tokens == 30
    sent = fake.requests[0]
    assert (sent.surface, sent.model, sent.method) == ("ai_studio", MODEL, "generateContent")
    assert sent.headers["x-goog-api-key"] == "g-key"
    assert sent.body["systemInstruction"] == {"parts": [{"text": "Answer in French."}]}
    assert sent.body["contents"] == [{"role": "user", "parts": [{"text": "Hello"}]}]
    assert sent.body["generationConfig"]["maxOutputTokens"] == 50
    assert sent.body["generationConfig"]["stopSequences"] == ["END"]


async def test_ai_studio_stream_with_usage(tmp_path: Path, upstream: tuple[FakeGemini, str]) -> None:
    fake, url = upstream
    events = text_stream(["Hel", "lo, ", "wörld"], usage=usage_metadata(9, 3))
    fake.enqueue(SseReply(events, piece_size=5))
    async with running_sidecar(compile_yaml(tmp_path, ai_studio_yaml(url)), env=KEY_ENV) as sidecar:
        stream = await sidecar.client().chat.completions.create(
            model="helper", messages=[user("hi")], stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello, wörld"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 12
    assert fake.requests[0].method == "streamGenerateContent"
    assert fake.requests[0].query == {"alt": "sse"}


async def test_tool_calls_plain_streamed_and_next_turn(
    tmp_path: Path, upstream: tuple[FakeGemini, str]
) -> None:
    fake, url = upstream
    calls = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})]
    usage = usage_metadata(30, 10)
    fake.enqueue(
        JsonReply(function_call_response(calls, signature="c2lnLTE=", usage=usage)),
        SseReply(
            [
                response([candidate([{"text": "Checking. "}], None)]),
                function_call_response(calls, signature="c2lnLTE=", usage=usage),
            ],
            piece_size=11,
        ),
        JsonReply(text_response("Paris 18C, Oslo 9C")),
    )
    async with running_sidecar(compile_yaml(tmp_path, ai_studio_yaml(url)), env=KEY_ENV) as sidecar:
        client = sidecar.client()
        plain = await client.chat.completions.create(
            model="helper", messages=[user("Weather in Paris and Oslo?")], tools=[WEATHER_TOOL]
        )
        stream = await client.chat.completions.create(
            model="helper", messages=[user("Weather in Paris and Oslo?")], tools=[WEATHER_TOOL], stream=True
        )
        streamed: dict[int, dict[str, str]] = {}
        finish = None
        async for chunk in stream:
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                for delta in choice.delta.tool_calls or ():
                    slot = streamed.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                    slot["id"] += delta.id or ""
                    if delta.function is not None:
                        slot["name"] += delta.function.name or ""
                        slot["arguments"] += delta.function.arguments or ""
        tool_calls = plain.choices[0].message.tool_calls or []
        history: list[Any] = [
            user("Weather in Paris and Oslo?"),
            {"role": "assistant", "content": None, "tool_calls": [c.model_dump() for c in tool_calls]},
            {"role": "tool", "tool_call_id": tool_calls[0].id, "content": "18C"},
            {"role": "tool", "tool_call_id": tool_calls[1].id, "content": "9C"},
        ]
        final = await client.chat.completions.create(model="helper", tools=[WEATHER_TOOL], messages=history)
    assert plain.choices[0].finish_reason == "tool_calls"
    expected = [
        {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}  # type: ignore[union-attr]
        for c in tool_calls
    ]
    assert [(c["name"], c["arguments"]) for c in expected] == [
        ("get_weather", '{"city":"Paris"}'),
        ("get_weather", '{"city":"Oslo"}'),
    ]
    assert [streamed[i] for i in sorted(streamed)] == expected
    assert finish == "tool_calls"
    assert final.choices[0].message.content == "Paris 18C, Oslo 9C"
    declarations = fake.requests[0].body["tools"][0]["functionDeclarations"]
    assert declarations == [
        {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {
                "type": "OBJECT",
                "properties": {"city": {"type": "STRING"}},
                "required": ["city"],
            },
        }
    ]
    contents = fake.requests[2].body["contents"]
    assert contents[1]["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnLTE="},
        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
    ]
    assert contents[2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"output": "18C"}}},
            {"functionResponse": {"name": "get_weather", "response": {"output": "9C"}}},
        ],
    }


async def test_unavailable_is_retried_and_invalid_argument_is_not(
    tmp_path: Path, upstream: tuple[FakeGemini, str]
) -> None:
    fake, url = upstream
    fake.enqueue(
        JsonReply(google_error(503, "UNAVAILABLE", "The model is overloaded.", wrapped=True), status=503),
        JsonReply(text_response("second time lucky")),
        JsonReply(google_error(400, "INVALID_ARGUMENT", "Invalid value at 'contents'"), status=400),
    )
    async with running_sidecar(compile_yaml(tmp_path, ai_studio_yaml(url)), env=KEY_ENV) as sidecar:
        client = sidecar.client()
        answer = await client.chat.completions.create(model="helper", messages=[user("hi")])
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="helper", messages=[user("hi")])
    assert answer.choices[0].message.content == "second time lucky"
    assert len(fake.requests) == 3
    assert caught.value.body["message"] == "Invalid value at 'contents'"  # type: ignore[index]
    assert caught.value.body["code"] == "INVALID_ARGUMENT"  # type: ignore[index]


async def test_rate_limited_gemini_falls_back_to_another_format(
    tmp_path: Path, upstream: tuple[FakeGemini, str]
) -> None:
    fake, url = upstream
    fake.enqueue(JsonReply(google_error(429, "RESOURCE_EXHAUSTED", "quota", retry_delay="1s"), status=429))
    async with running_sidecar(compile_yaml(tmp_path, ai_studio_yaml(url)), env=KEY_ENV) as sidecar:
        answer = await sidecar.client().chat.completions.create(model="rescued", messages=[user("hi")])
    assert answer.choices[0].message.content == "from the fallback"
    assert len(fake.requests) == 1


async def test_stream_cut_becomes_an_error_event(tmp_path: Path, upstream: tuple[FakeGemini, str]) -> None:
    fake, url = upstream
    fake.enqueue(SseReply([response([candidate([{"text": "Once upon"}], None)])]))
    async with running_sidecar(compile_yaml(tmp_path, ai_studio_yaml(url)), env=KEY_ENV) as sidecar:
        stream = await sidecar.client().chat.completions.create(
            model="helper", messages=[user("a story")], stream=True
        )
        received = ""
        with pytest.raises(openai.APIError):
            async for chunk in stream:
                received += "".join(c.delta.content or "" for c in chunk.choices)
    assert received == "Once upon"


async def test_blocked_prompt_is_content_filter(tmp_path: Path, upstream: tuple[FakeGemini, str]) -> None:
    fake, url = upstream
    fake.enqueue(
        JsonReply({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage_metadata(4, 0)})
    )
    async with running_sidecar(compile_yaml(tmp_path, ai_studio_yaml(url)), env=KEY_ENV) as sidecar:
        answer = await sidecar.client().chat.completions.create(model="helper", messages=[user("bad")])
    assert answer.choices[0].finish_reason == "content_filter"
    assert answer.choices[0].message.content == ""


# --- Vertex AI -----------------------------------------------------------------------------------


async def test_vertex_from_config_plain_and_streamed(
    tmp_path: Path, upstream: tuple[FakeGemini, str], rsa_key: rsa.RSAPrivateKey
) -> None:
    fake, url = upstream
    sa = write_service_account(tmp_path / "sa.json", rsa_key, url + "/token")
    table = compile_yaml(tmp_path, vertex_yaml(url, sa))
    fake.enqueue(
        JsonReply(text_response("from vertex", usage=usage_metadata(5, 2))),
        SseReply(text_stream(["stre", "amed"], usage=usage_metadata(5, 2))),
    )
    async with running_sidecar(table, env={}) as sidecar:
        client = sidecar.client()
        answer = await client.chat.completions.create(model="helper", messages=[user("hi")])
        stream = await client.chat.completions.create(
            model="helper", messages=[user("hi")], stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
    assert answer.choices[0].message.content == "from vertex"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "streamed"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 7
    assert [r.surface for r in fake.requests] == ["vertex", "vertex"]
    first = fake.requests[0]
    assert (first.project, first.location, first.model) == ("proj-1", "us-central1", MODEL)
    assert first.headers["Authorization"] == "Bearer ya29.token-1"
    assert "x-goog-api-key" not in first.headers
    assert fake.requests[1].headers["Authorization"] == "Bearer ya29.token-1"
    assert fake.oauth is not None and len(fake.oauth.assertions) == 1


async def test_vertex_switched_on_by_env(
    tmp_path: Path, upstream: tuple[FakeGemini, str], rsa_key: rsa.RSAPrivateKey
) -> None:
    fake, url = upstream
    sa = write_service_account(tmp_path / "sa.json", rsa_key, url + "/token")
    env = {
        "ASTRA_GEMINI_VERTEX_AI_ENABLED": "true",
        "ASTRA_GEMINI_VERTEX_AI_PROJECT": "env-proj",
        "ASTRA_GEMINI_VERTEX_AI_LOCATION": "europe-west4",
        "ASTRA_GEMINI_VERTEX_AI_CREDENTIALS_FILE": str(sa),
    }
    table = compile_yaml(tmp_path, ai_studio_yaml(url))
    fake.enqueue(JsonReply(text_response("env vertex")))
    async with running_sidecar(table, env=env) as sidecar:
        answer = await sidecar.client().chat.completions.create(model="helper", messages=[user("hi")])
    assert answer.choices[0].message.content == "env vertex"
    sent = fake.requests[0]
    assert (sent.surface, sent.project, sent.location) == ("vertex", "env-proj", "europe-west4")
    assert sent.headers["Authorization"] == "Bearer ya29.token-1"
