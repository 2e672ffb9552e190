"""The Gemini ingress with the official google-genai SDK as the client.

`genai.Client(api_key=…, http_options=HttpOptions(base_url=SIDECAR + "/v1/gemini/AGENT"))`, with
the SDK's default API version (v1) and with v1beta. Same-format agents (AI Studio and Vertex)
get the request natively, with the agent's policy applied in Gemini's shape; cross-format agents
(openai, mock, or a fallback) get it translated both ways, streams included.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa
from google import genai
from google.genai import errors, types

from sidecar.app import create_app
from sidecar.clock import ManualClock
from sidecar.errors import ClientError
from sidecar.protocols.gemini.ingress_request import parse_request
from sidecar.protocols.gemini.ingress_stream import GeminiStreamEncoder
from sidecar.protocols.gemini.ingress_translate import to_openai_body
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
from tests.fakes.openai_upstream import FakeOpenAI, Step, completion, text_chunks
from tests.sidecar.harness import compile_yaml, running_sidecar

#: google-genai subclasses aiohttp's ClientSession, which aiohttp discourages: the SDK's business.
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

MODEL = "gemini-2.5-flash"
#: Its own model id: the compiler keys clusters by provider:model:endpoint, not by credentials mode.
OWN_KEY_MODEL = "gemini-2.5-pro"
GEMINI_KEY = "g-env-key"
OPENAI_KEY = "sk-openai-env"
ENV = {"GEMINI_API_KEY": GEMINI_KEY, "OPENAI_API_KEY": OPENAI_KEY}
CANARY = "AIza-CANARY-7f3c9e1d5b"
VERSIONS = [None, "v1beta"]

WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Current weather",
    parameters=types.Schema(
        type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}, required=["city"]
    ),
)
DELETE = types.FunctionDeclaration(
    name="delete_account", parameters_json_schema={"type": "object", "properties": {}}
)


def agents_yaml(gemini: str, openai: str) -> str:
    fallback = f"fallback: {{provider: openai, modelId: gpt-4o-mini, endpoint: '{openai}'}}"
    return f"""
        version: 1
        agents:
          native:
            model: {{provider: gemini, modelId: {MODEL}, endpoint: "{gemini}"}}
            retry: {{maxRetries: 0}}
          governed:
            displayName: Weather bot
            systemPrompt: "You are {{{{ agent.displayName }}}} on {{{{ model.modelId }}}}."
            tools: {{allow: [get_weather]}}
            model:
              provider: gemini
              modelId: {MODEL}
              endpoint: "{gemini}"
              temperature: 0.3
              maxOutputTokens: 256
          prompted:
            displayName: Weather bot
            systemPrompt: "You are {{{{ agent.displayName }}}} on {{{{ model.modelId }}}}."
            model:
              provider: gemini
              modelId: {MODEL}
              endpoint: "{gemini}"
              temperature: 0.3
              maxOutputTokens: 256
          on-openai:
            systemPrompt: "Be brief."
            model: {{provider: openai, modelId: gpt-4o-mini, endpoint: "{openai}", maxOutputTokens: 300}}
          on-mock:
            model: {{provider: mock, modelId: canned, mock: {{reply: "Hello from the mock provider"}}}}
          rescued:
            model: {{provider: gemini, modelId: {MODEL}, endpoint: "{gemini}", {fallback}}}
            retry: {{maxRetries: 0}}
          own-key:
            model:
              provider: gemini
              modelId: {OWN_KEY_MODEL}
              endpoint: "{gemini}"
              credentials: passthrough
              {fallback}
            retry: {{maxRetries: 0}}
        """


def vertex_yaml(gemini: str, credentials_file: Path) -> str:
    return f"""
        version: 1
        providers:
          gemini:
            vertex: {{project: proj-1, location: us-central1, credentialsFile: "{credentials_file}"}}
        agents:
          on-vertex:
            systemPrompt: "Vertex agent."
            model: {{provider: gemini, modelId: {MODEL}, endpoint: "{gemini}"}}
        """


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return new_rsa_key()


@dataclass
class World:
    gemini: FakeGemini
    gemini_url: str
    openai: FakeOpenAI
    tmp_path: Path

    @asynccontextmanager
    async def sidecar(self, env: Mapping[str, str] | None = None) -> AsyncIterator[str]:
        table = compile_yaml(self.tmp_path, agents_yaml(self.gemini_url, self.openai.url))
        async with running_sidecar(table, env=ENV if env is None else env) as sidecar:
            yield sidecar.url


@pytest.fixture
async def world(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> AsyncIterator[World]:
    fake = FakeGemini(api_key=GEMINI_KEY, oauth=FakeGoogleOAuth(rsa_key.public_key()))
    server = TestServer(fake.app())
    await server.start_server()
    openai = await FakeOpenAI().start()
    try:
        yield World(fake, str(server.make_url("")).rstrip("/"), openai, tmp_path)
    finally:
        await openai.close()
        await server.close()


@asynccontextmanager
async def gemini_client(
    url: str, agent: str, *, version: str | None = None, api_key: str = "client-key"
) -> AsyncIterator[genai.Client]:
    options = types.HttpOptions(base_url=f"{url}/v1/gemini/{agent}", api_version=version, timeout=20_000)
    client = genai.Client(api_key=api_key, http_options=options)
    try:
        yield client
    finally:
        await client.aio.aclose()


async def ask(url: str, agent: str, contents: Any, version: str | None = None, **config: Any) -> Any:
    async with gemini_client(url, agent, version=version) as client:
        return await client.aio.models.generate_content(
            model=MODEL, contents=contents, config=types.GenerateContentConfig(**config) if config else None
        )


async def ask_stream(
    url: str, agent: str, contents: Any, version: str | None = None, **config: Any
) -> list[Any]:
    async with gemini_client(url, agent, version=version) as client:
        stream = await client.aio.models.generate_content_stream(
            model=MODEL, contents=contents, config=types.GenerateContentConfig(**config) if config else None
        )
        return [chunk async for chunk in stream]


def text_of(chunks: list[Any]) -> str:
    return "".join(chunk.text or "" for chunk in chunks)


async def post(url: str, path: str, body: Any, headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else None
    async with (
        aiohttp.ClientSession() as http,
        http.post(url + path, data=data, json=None if data is not None else body, headers=headers) as answer,
    ):
        return answer.status, await answer.json(content_type=None)


HI = [{"role": "user", "parts": [{"text": "hi"}]}]


# --- same format: Gemini agents get the request natively ----------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
async def test_native_plain_answer_is_relayed_and_the_body_passes_through(
    world: World, version: str | None
) -> None:
    usage = usage_metadata(12, 4, cached=8, thoughts=5)
    world.gemini.enqueue(JsonReply(text_response("Bonjour!", usage=usage, response_id="resp-42")))
    async with world.sidecar() as url, gemini_client(url, "native", version=version) as client:
        answer: Any = await client.aio.models.generate_content(
            model="any-model-name",
            contents="Hello",
            config=types.GenerateContentConfig(
                system_instruction="Answer in French.", max_output_tokens=50, stop_sequences=["END"]
            ),
        )
    assert answer.text == "Bonjour!"
    assert answer.candidates[0].finish_reason == types.FinishReason.STOP
    assert answer.response_id == "resp-42" and answer.model_version == MODEL
    assert answer.usage_metadata.prompt_token_count == 12
    assert answer.usage_metadata.thoughts_token_count == 5
    headers = answer.sdk_http_response.headers
    assert (headers["x-astra-agent"], headers["x-astra-provider"]) == ("native", "gemini")
    sent = world.gemini.requests[0]
    assert (sent.surface, sent.model, sent.method) == ("ai_studio", MODEL, "generateContent")
    assert sent.path == f"/v1beta/models/{MODEL}:generateContent"
    assert sent.headers["x-goog-api-key"] == GEMINI_KEY
    assert "client-key" not in str(sent.headers)
    assert "x-goog-api-client" not in sent.headers
    assert sent.body == {
        "contents": [{"role": "user", "parts": [{"text": "Hello"}]}],
        "systemInstruction": {"role": "user", "parts": [{"text": "Answer in French."}]},
        "generationConfig": {"maxOutputTokens": 50, "stopSequences": ["END"]},
    }


@pytest.mark.parametrize("version", VERSIONS)
async def test_native_stream_is_relayed_as_server_sent_events(world: World, version: str | None) -> None:
    events = text_stream(["Hel", "lo, ", "wörld"], usage=usage_metadata(9, 3))
    world.gemini.enqueue(SseReply(events, piece_size=7))
    async with world.sidecar() as url:
        chunks = await ask_stream(url, "native", "hi", version)
    assert [c.text for c in chunks] == ["Hel", "lo, ", "wörld"]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.total_token_count == 12
    sent = world.gemini.requests[0]
    assert (sent.method, sent.query) == ("streamGenerateContent", {"alt": "sse"})
    assert sent.body == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


async def test_native_function_calling_round_trip_keeps_signatures(world: World) -> None:
    calls = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})]
    world.gemini.enqueue(
        JsonReply(function_call_response(calls, signature="c2lnLTE=")),
        JsonReply(text_response("Paris 18C, Oslo 9C")),
    )
    tools: list[Any] = [types.Tool(function_declarations=[WEATHER])]
    async with world.sidecar() as url, gemini_client(url, "native") as client:
        first: Any = await client.aio.models.generate_content(
            model=MODEL,
            contents="Weather in Paris and Oslo?",
            config=types.GenerateContentConfig(tools=tools),
        )
        history = [
            types.Content(role="user", parts=[types.Part.from_text(text="Weather in Paris and Oslo?")]),
            first.candidates[0].content,
            types.Content(
                role="user",
                parts=[
                    types.Part.from_function_response(name="get_weather", response={"output": "18C"}),
                    types.Part.from_function_response(name="get_weather", response={"output": "9C"}),
                ],
            ),
        ]
        final: Any = await client.aio.models.generate_content(
            model=MODEL, contents=history, config=types.GenerateContentConfig(tools=tools)
        )
    assert [(c.name, c.args) for c in first.function_calls or []] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Oslo"}),
    ]
    assert final.text == "Paris 18C, Oslo 9C"
    declaration = {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]},
    }
    assert world.gemini.requests[0].body["tools"] == [{"functionDeclarations": [declaration]}]
    assert world.gemini.requests[1].body["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": "c2lnLTE=",
                },
                {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"output": "18C"}}},
                {"functionResponse": {"name": "get_weather", "response": {"output": "9C"}}},
            ],
        },
    ]


async def test_governed_policy_prompt_limits_and_tools_in_geminis_shape(world: World) -> None:
    """An agent with a tool policy is served through the translation (for the answers' tool
    guard); its tool policy is applied in Gemini's shape first, so the refused googleSearch is
    removed, and the upstream gets the same request as the native path would send."""
    tools: list[Any] = [
        types.Tool(function_declarations=[WEATHER, DELETE]),
        types.Tool(google_search=types.GoogleSearch()),
    ]
    async with world.sidecar() as url, gemini_client(url, "governed") as client:
        raw: Any = await client.aio.models.generate_content(
            model=MODEL,
            contents="hi",
            config=types.GenerateContentConfig(
                system_instruction="Client rules.",
                max_output_tokens=4000,
                tools=tools,
                tool_config=types.ToolConfig(
                    function_calling_config=types.FunctionCallingConfig(
                        mode=types.FunctionCallingConfigMode.ANY,
                        allowed_function_names=["get_weather", "delete_account"],
                    )
                ),
            ),
        )
        streamed = await client.aio.models.generate_content_stream(
            model=MODEL,
            contents="hi",
            config=types.GenerateContentConfig(temperature=1.5, max_output_tokens=10),
        )
        chunks = [c async for c in streamed]
    assert raw.text == "echo: hi" and text_of(chunks) == "echo: hi"
    headers = raw.sdk_http_response.headers
    assert headers["x-astra-tools-removed"] == "googleSearch,delete_account"
    assert world.gemini.requests[0].body == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "systemInstruction": {
            "parts": [{"text": f"You are Weather bot on {MODEL}."}, {"text": "Client rules."}],
        },
        "tools": [
            {
                "functionDeclarations": [
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
            }
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
        "generationConfig": {"maxOutputTokens": 256, "temperature": 0.3},
    }
    assert world.gemini.requests[1].body == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "systemInstruction": {"parts": [{"text": f"You are Weather bot on {MODEL}."}]},
        "generationConfig": {"temperature": 1.5, "maxOutputTokens": 10},
    }


async def test_native_policy_prompt_and_limits_in_geminis_shape(world: World) -> None:
    """Without a tool policy the request goes to Gemini natively, the policy applied as it is."""
    tools: list[Any] = [
        types.Tool(function_declarations=[WEATHER]),
        types.Tool(google_search=types.GoogleSearch()),
    ]
    async with world.sidecar() as url, gemini_client(url, "prompted") as client:
        raw: Any = await client.aio.models.generate_content(
            model=MODEL,
            contents="hi",
            config=types.GenerateContentConfig(
                system_instruction="Client rules.", max_output_tokens=4000, tools=tools
            ),
        )
    assert raw.text == "echo: hi"
    assert "x-astra-tools-removed" not in raw.sdk_http_response.headers
    assert world.gemini.requests[0].body == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "systemInstruction": {
            "role": "user",
            "parts": [{"text": f"You are Weather bot on {MODEL}."}, {"text": "Client rules."}],
        },
        "tools": [
            {"googleSearch": {}},  # the SDK sends it first
            {
                "functionDeclarations": [
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
            },
        ],
        "generationConfig": {"maxOutputTokens": 256, "temperature": 0.3},
    }


async def test_forcing_only_removed_tools_is_a_400(world: World) -> None:
    body = {
        "contents": HI,
        "tools": [{"functionDeclarations": [{"name": "delete_account"}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["delete_account"]}},
    }
    async with world.sidecar() as url:
        status, payload = await post(url, f"/v1/gemini/governed/v1/models/{MODEL}:generateContent", body)
    assert status == 400
    assert payload["error"]["status"] == "INVALID_ARGUMENT"
    assert payload["error"]["message"] == "tool 'delete_account' is not allowed for this agent"
    assert world.gemini.requests == []


async def test_vertex_agent_native_plain_and_streamed(
    world: World, tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    sa = write_service_account(tmp_path / "sa.json", rsa_key, world.gemini_url + "/token")
    table = compile_yaml(tmp_path, vertex_yaml(world.gemini_url, sa))
    world.gemini.enqueue(
        JsonReply(text_response("from vertex", usage=usage_metadata(5, 2))),
        SseReply(text_stream(["stre", "amed"], usage=usage_metadata(5, 2))),
    )
    async with running_sidecar(table, env={}) as sidecar:
        answer = await ask(sidecar.url, "on-vertex", "hi", "v1beta")
        chunks = await ask_stream(sidecar.url, "on-vertex", "hi")
    assert answer.text == "from vertex"
    assert text_of(chunks) == "streamed" and chunks[-1].usage_metadata.total_token_count == 7
    plain, streamed = world.gemini.requests
    assert [r.surface for r in world.gemini.requests] == ["vertex", "vertex"]
    prefix = f"/v1/projects/proj-1/locations/us-central1/publishers/google/models/{MODEL}"
    assert (plain.path, streamed.path) == (prefix + ":generateContent", prefix + ":streamGenerateContent")
    assert streamed.query == {"alt": "sse"}
    assert plain.headers["Authorization"] == "Bearer ya29.token-1"
    assert "x-goog-api-key" not in plain.headers
    assert plain.body == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "systemInstruction": {"parts": [{"text": "Vertex agent."}]},
    }


# --- cross format: translated to OpenAI and back --------------------------------------------------


async def test_openai_agent_plain_answer_and_the_translated_request(world: World) -> None:
    world.openai.script = [Step(body=completion("Hi there!", "gpt-4o-mini", usage=(11, 3)))]
    async with world.sidecar() as url:
        answer = await ask(
            url,
            "on-openai",
            [
                types.Content(role="user", parts=[types.Part.from_text(text="Hello")]),
                types.Content(role="model", parts=[types.Part.from_text(text="Hi! How can I help?")]),
                types.Content(
                    role="user",
                    parts=[
                        types.Part.from_text(text="What is this?"),
                        types.Part.from_bytes(data=b"\x89PNG", mime_type="image/png"),
                    ],
                ),
            ],
            system_instruction="Answer in English.",
            temperature=0.2,
            top_p=0.9,
            top_k=40,
            max_output_tokens=1000,
            stop_sequences=["END"],
            seed=7,
            response_mime_type="application/json",
            response_schema=types.Schema(
                type=types.Type.OBJECT,
                properties={"answer": types.Schema(type=types.Type.STRING, nullable=True)},
                required=["answer"],
            ),
        )
    assert answer.text == "Hi there!"
    assert answer.candidates[0].finish_reason == types.FinishReason.STOP
    assert (answer.model_version, answer.response_id) == ("gpt-4o-mini", "chatcmpl-fake")
    usage = answer.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (11, 3, 14)
    assert answer.sdk_http_response.headers["x-astra-provider"] == "openai"
    sent = world.openai.received[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    assert sent.body == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "system", "content": "Answer in English."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi! How can I help?"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}},
                ],
            },
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "max_completion_tokens": 300,
        "seed": 7,
        "stop": ["END"],
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "response",
                "schema": {
                    "type": "object",
                    "properties": {"answer": {"type": ["string", "null"]}},
                    "required": ["answer"],
                },
            },
        },
    }


@pytest.mark.parametrize("version", VERSIONS)
async def test_openai_agent_stream_is_translated_to_gemini_events(world: World, version: str | None) -> None:
    chunks = text_chunks(["Hel", "lo", "!"], "gpt-4o-mini")
    usage_chunk = {
        **chunks[0],
        "choices": [],
        "usage": {"prompt_tokens": 6, "completion_tokens": 3, "total_tokens": 9},
    }
    world.openai.script = [Step("sse", chunks=[*chunks, usage_chunk])]
    async with world.sidecar() as url:
        received = await ask_stream(url, "on-openai", "hi", version)
    assert [c.text for c in received] == ["Hel", "lo", "!", ""]
    last = received[-1]
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert (last.usage_metadata.prompt_token_count, last.usage_metadata.total_token_count) == (6, 9)
    assert all(c.usage_metadata is None for c in received[:-1])
    assert all(c.model_version == "gpt-4o-mini" for c in received)
    sent = world.openai.received[0].body
    assert (sent["stream"], sent["stream_options"]) == (True, {"include_usage": True})


def _tool_call_chunks() -> list[dict[str, Any]]:
    base = {"id": "chatcmpl-t", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}

    def delta(d: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}

    def call(index: int, call_id: str | None, name: str | None, arguments: str) -> dict[str, Any]:
        fragment: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
        if call_id is not None:
            fragment.update(id=call_id, type="function")
            fragment["function"]["name"] = name
        return delta({"tool_calls": [fragment]})

    return [
        delta({"role": "assistant", "content": "Checking. "}),
        call(0, "call_a", "get_weather", ""),
        call(0, None, None, '{"city":'),
        call(0, None, None, '"Paris"}'),
        call(1, "call_b", "get_weather", '{"city":"Oslo"}'),
        delta({}, "tool_calls"),
    ]


async def test_openai_agent_function_calls_plain_streamed_and_round_trip(world: World) -> None:
    plain_calls = {
        **completion("", "gpt-4o-mini"),
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "id": "call_b",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                        },
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
    }
    world.openai.script = [
        Step(body=plain_calls),
        Step("sse", chunks=_tool_call_chunks()),
        Step(body=completion("Paris 18C, Oslo 9C", "gpt-4o-mini")),
    ]
    tools: list[Any] = [types.Tool(function_declarations=[WEATHER])]
    forced = types.ToolConfig(
        function_calling_config=types.FunctionCallingConfig(
            mode=types.FunctionCallingConfigMode.ANY, allowed_function_names=["get_weather"]
        )
    )
    async with world.sidecar() as url, gemini_client(url, "on-openai") as client:
        plain: Any = await client.aio.models.generate_content(
            model=MODEL,
            contents="Weather?",
            config=types.GenerateContentConfig(tools=tools, tool_config=forced),
        )
        stream = await client.aio.models.generate_content_stream(
            model=MODEL, contents="Weather?", config=types.GenerateContentConfig(tools=tools)
        )
        streamed: list[Any] = [c async for c in stream]
        history = [
            types.Content(role="user", parts=[types.Part.from_text(text="Weather?")]),
            types.Content(
                role="model",
                parts=[
                    types.Part.from_function_call(name="get_weather", args={"city": "Paris"}),
                    types.Part.from_function_call(name="get_weather", args={"city": "Oslo"}),
                ],
            ),
            types.Content(
                role="user",
                parts=[
                    types.Part.from_function_response(name="get_weather", response={"output": "18C"}),
                    types.Part.from_function_response(name="get_weather", response={"temp": 9}),
                ],
            ),
        ]
        final: Any = await client.aio.models.generate_content(
            model=MODEL, contents=history, config=types.GenerateContentConfig(tools=tools)
        )
    expected = [("call_a", "get_weather", {"city": "Paris"}), ("call_b", "get_weather", {"city": "Oslo"})]
    assert [(c.id, c.name, c.args) for c in plain.function_calls or []] == expected
    assert plain.candidates[0].finish_reason == types.FinishReason.STOP
    assert [c.text for c in streamed[:1]] == ["Checking. "]
    streamed_calls = [(c.id, c.name, c.args) for chunk in streamed for c in chunk.function_calls or []]
    assert streamed_calls == expected
    assert [len(chunk.function_calls or []) for chunk in streamed] == [0, 2, 0]
    assert streamed[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert final.text == "Paris 18C, Oslo 9C"
    first, _, third = (r.body for r in world.openai.received)
    assert first["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    assert first["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert third["messages"][1:] == [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1_0",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_1_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1_0", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_1_1", "content": '{"temp":9}'},
    ]


async def test_mock_agent_plain_and_streamed(world: World) -> None:
    async with world.sidecar() as url:
        answer = await ask(url, "on-mock", "hi", "v1beta")
        chunks = await ask_stream(url, "on-mock", "hi")
    assert answer.text == "Hello from the mock provider"
    assert answer.sdk_http_response.headers["x-astra-provider"] == "mock"
    assert text_of(chunks) == "Hello from the mock provider"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count == 5


# --- fallback -------------------------------------------------------------------------------------


async def test_unavailable_gemini_falls_back_to_openai_plain(world: World) -> None:
    world.gemini.enqueue(JsonReply(google_error(503, "UNAVAILABLE", "The model is overloaded."), status=503))
    world.openai.script = [Step(body=completion("from the fallback", "gpt-4o-mini"))]
    async with world.sidecar() as url:
        answer = await ask(url, "rescued", "hi")
    assert answer.text == "from the fallback"
    headers = answer.sdk_http_response.headers
    assert (headers["x-astra-provider"], headers["x-astra-attempts"]) == ("openai", "2")
    assert len(world.gemini.requests) == 1
    assert world.openai.received[0].body["messages"] == [{"role": "user", "content": "hi"}]


async def test_unavailable_gemini_falls_back_to_openai_streamed(world: World) -> None:
    world.gemini.enqueue(JsonReply(google_error(503, "UNAVAILABLE", "The model is overloaded."), status=503))
    world.openai.script = [Step("sse", chunks=text_chunks(["from ", "the ", "fallback"], "gpt-4o-mini"))]
    async with world.sidecar() as url:
        chunks = await ask_stream(url, "rescued", "hi")
    assert text_of(chunks) == "from the fallback"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert world.gemini.requests[0].method == "streamGenerateContent"
    assert world.openai.received[0].body["stream"] is True


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
        (":countTokens", {"contents": HI}, 404, None),
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


# --- credentials ----------------------------------------------------------------------------------


async def test_passthrough_key_from_the_header_reaches_gemini_only(world: World) -> None:
    world.gemini.api_key = CANARY
    world.gemini.enqueue(
        JsonReply(text_response("with your key")),
        JsonReply(google_error(503, "UNAVAILABLE", "overloaded"), status=503),
    )
    world.openai.script = [Step(body=completion("from the fallback", "gpt-4o-mini"))]
    async with world.sidecar() as url, gemini_client(url, "own-key", api_key=CANARY) as client:
        answer: Any = await client.aio.models.generate_content(model=MODEL, contents="hi")
        rescued = await client.aio.models.generate_content(model=MODEL, contents="hi")
    assert answer.text == "with your key" and rescued.text == "from the fallback"
    assert [r.headers["x-goog-api-key"] for r in world.gemini.requests] == [CANARY, CANARY]
    (fallback,) = world.openai.received
    assert fallback.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    assert CANARY not in str(fallback.headers) and CANARY not in str(fallback.body)


async def test_passthrough_key_from_the_query_reaches_gemini_only(world: World) -> None:
    world.gemini.api_key = CANARY
    world.gemini.enqueue(JsonReply(google_error(503, "UNAVAILABLE", "overloaded"), status=503))
    world.openai.script = [Step(body=completion("from the fallback", "gpt-4o-mini"))]
    path = f"/v1/gemini/own-key/v1beta/models/{MODEL}:generateContent"
    async with world.sidecar() as url:
        status, payload = await post(url, f"{path}?key={CANARY}", {"contents": HI})
        status2, payload2 = await post(url, f"{path}?key={CANARY}", {"contents": HI})
    assert (status, payload["candidates"][0]["content"]["parts"]) == (200, [{"text": "from the fallback"}])
    assert (status2, payload2["candidates"][0]["content"]["parts"]) == (200, [{"text": "echo: hi"}])
    assert [r.headers["x-goog-api-key"] for r in world.gemini.requests] == [CANARY, CANARY]
    assert all(r.query == {} for r in world.gemini.requests)
    assert CANARY not in str(world.openai.received[0].headers)


async def test_passthrough_without_a_key_is_401_unauthenticated(world: World) -> None:
    async with world.sidecar() as url:
        status, payload = await post(
            url, f"/v1/gemini/own-key/v1/models/{MODEL}:generateContent", {"contents": HI}
        )
    assert status == 401
    assert payload["error"]["status"] == "UNAUTHENTICATED"
    assert world.gemini.requests == [] and world.openai.received == []


async def test_canary_key_appears_in_no_log_metric_or_response(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.gemini.api_key = CANARY
    world.gemini.enqueue(
        SseReply(text_stream(["fi", "ne"])),
        SseReply([response([candidate([{"text": "cut"}], None)])]),
        JsonReply(google_error(400, "INVALID_ARGUMENT", "Invalid value at 'contents'"), status=400),
        JsonReply(google_error(503, "UNAVAILABLE", "overloaded"), status=503),
    )
    world.openai.script = [Step(status=500, body={"error": {"message": "down", "type": "server_error"}})]
    caplog.set_level(logging.DEBUG)
    table = compile_yaml(world.tmp_path, agents_yaml(world.gemini_url, world.openai.url))
    app = create_app(table, env=ENV, clock=ManualClock())
    server = TestServer(app)
    await server.start_server(access_log=None)  # as `astra serve` runs it
    url = str(server.make_url("")).rstrip("/")
    seen: list[str] = []

    async def call(path: str, headers: Mapping[str, str] | None = None, method: str = "POST") -> None:
        body = None if method == "GET" else {"contents": HI}
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, url + path, json=body, headers=headers) as answer,
        ):
            seen.append(f"{answer.status} {dict(answer.headers)!r} {await answer.read()!r}")

    stream = f"/v1/gemini/own-key/v1/models/{MODEL}:streamGenerateContent?alt=sse"
    generate = f"/v1/gemini/own-key/v1beta/models/{MODEL}:generateContent?key={CANARY}"
    try:
        await call(stream, {"x-goog-api-key": CANARY})
        await call(f"{stream}&key={CANARY}")
        await call(generate)
        await call(generate)
        await call("/metrics", method="GET")
    finally:
        await server.close()
    assert [line[:3] for line in seen] == ["200", "200", "400", "500", "200"]
    assert "gemini stream ended before a finishReason" in seen[1]
    assert [r.headers["x-goog-api-key"] for r in world.gemini.requests] == [CANARY] * 4
    assert caplog.records
    everything = caplog.text + "\n".join(seen) + "\n".join(r.getMessage() for r in caplog.records)
    assert CANARY not in everything


# --- models ---------------------------------------------------------------------------------------


async def test_models_get_and_list_describe_the_agent(world: World) -> None:
    async with world.sidecar() as url, gemini_client(url, "governed") as client:
        model = await client.aio.models.get(model=MODEL)
        listed = [m async for m in await client.aio.models.list()]
        with pytest.raises(errors.ClientError) as caught:
            async with gemini_client(url, "nobody") as other:
                await other.aio.models.get(model=MODEL)
    assert model.name == f"models/{MODEL}"
    assert model.display_name == "Weather bot"
    assert model.output_token_limit == 256
    assert model.supported_actions == ["generateContent", "streamGenerateContent"]
    assert [m.name for m in listed] == ["models/governed"]
    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")


async def test_sidecar_token_is_accepted_as_the_sdk_key_or_query_key(tmp_path: Path) -> None:
    yaml = """
        version: 1
        settings: {inboundAuth: {tokenEnv: ASTRA_TOKEN}}
        agents:
          on-mock: {model: {provider: mock, modelId: canned, mock: {reply: "let in"}}}
        """
    path = f"/v1/gemini/on-mock/v1/models/{MODEL}:generateContent"
    async with running_sidecar(compile_yaml(tmp_path, yaml), env={"ASTRA_TOKEN": "tok-1"}) as sidecar:
        async with gemini_client(sidecar.url, "on-mock", api_key="tok-1") as client:
            answer: Any = await client.aio.models.generate_content(model=MODEL, contents="hi")
        by_query = await post(sidecar.url, path + "?key=tok-1", {"contents": HI})
        refused = await post(sidecar.url, path + "?key=wrong", {"contents": HI})
    assert answer.text == "let in"
    assert by_query[0] == 200 and by_query[1]["candidates"][0]["content"]["parts"] == [{"text": "let in"}]
    assert refused[0] == 401


# --- translation details (no network) -------------------------------------------------------------


def test_snake_case_field_names_are_made_canonical_and_translated() -> None:
    body = {
        "model": "models/ignored",
        "contents": [
            {
                "parts": [
                    {"inline_data": {"mime_type": "application/pdf", "data": "JVBE"}},
                    {"text": "Summarise"},
                ]
            }
        ],
        "system_instruction": {"parts": [{"text": "One"}, {"text": "Two"}]},
        "generation_config": {
            "max_output_tokens": 5,
            "candidate_count": 2,
            "response_mime_type": "application/json",
            "response_json_schema": {"type": "object", "properties": {"a_b": {"type": "string"}}},
        },
        "tools": [
            {
                "function_declarations": [
                    {"name": "f", "parameters_json_schema": {"type": "object", "properties": {"x_y": {}}}},
                    {"name": "g"},
                    {"name": "h"},
                ]
            }
        ],
        "tool_config": {"function_calling_config": {"mode": "ANY", "allowed_function_names": ["f", "g"]}},
    }
    request = parse_request(body)
    assert request == {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
                    {"text": "Summarise"},
                ],
            }
        ],
        "systemInstruction": {"parts": [{"text": "One"}, {"text": "Two"}]},
        "generationConfig": {
            "maxOutputTokens": 5,
            "candidateCount": 2,
            "responseMimeType": "application/json",
            "responseJsonSchema": {"type": "object", "properties": {"a_b": {"type": "string"}}},
        },
        "tools": [
            {
                "functionDeclarations": [
                    {"name": "f", "parametersJsonSchema": {"type": "object", "properties": {"x_y": {}}}},
                    {"name": "g"},
                    {"name": "h"},
                ]
            }
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f", "g"]}},
    }
    empty = {"type": "object", "properties": {}}
    assert to_openai_body(request, "agent", stream=False) == {
        "model": "agent",
        "messages": [
            {"role": "system", "content": "One\nTwo"},
            {
                "role": "user",
                "content": [
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}},
                    {"type": "text", "text": "Summarise"},
                ],
            },
        ],
        "max_completion_tokens": 5,
        "n": 2,
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "response",
                "schema": {"type": "object", "properties": {"a_b": {"type": "string"}}},
            },
        },
        "tools": [
            {
                "type": "function",
                "function": {"name": "f", "parameters": {"type": "object", "properties": {"x_y": {}}}},
            },
            {"type": "function", "function": {"name": "g", "parameters": empty}},
        ],
        "tool_choice": "required",
    }


def test_function_responses_are_matched_by_id_then_by_name_in_order() -> None:
    request = parse_request(
        {
            "contents": [
                {"role": "user", "parts": [{"text": "go"}]},
                {
                    "role": "model",
                    "parts": [
                        {"text": "thinking", "thought": True},
                        {"functionCall": {"name": "a", "args": {"n": 1}}},
                        {"functionCall": {"name": "b", "id": "own-id"}},
                        {"functionCall": {"name": "a", "args": {"n": 2}}},
                    ],
                },
                {
                    "role": "user",
                    "parts": [
                        {"functionResponse": {"name": "b", "id": "own-id", "response": {"output": "B"}}},
                        {"functionResponse": {"name": "a", "response": {"output": "A1"}}},
                        {"functionResponse": {"name": "a", "response": {"error": "boom"}}},
                        {"text": "and now?"},
                    ],
                },
            ],
            "toolConfig": {"functionCallingConfig": {"mode": "NONE"}},
            "tools": [{"functionDeclarations": [{"name": "a"}, {"name": "b"}]}],
        }
    )
    body = to_openai_body(request, "agent", stream=True)
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1_0", "type": "function", "function": {"name": "a", "arguments": '{"n":1}'}},
                {"id": "own-id", "type": "function", "function": {"name": "b", "arguments": "{}"}},
                {"id": "call_1_2", "type": "function", "function": {"name": "a", "arguments": '{"n":2}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "own-id", "content": "B"},
        {"role": "tool", "tool_call_id": "call_1_0", "content": "A1"},
        {"role": "tool", "tool_call_id": "call_1_2", "content": '{"error":"boom"}'},
        {"role": "user", "content": "and now?"},
    ]
    assert body["tool_choice"] == "none"
    assert (body["stream"], body["stream_options"]) == (True, {"include_usage": True})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]},
            "contents[0].parts[0].functionResponse",
        ),
        ({"contents": HI, "tools": [{"googleSearch": {}}]}, "tools[0].googleSearch"),
        (
            {
                "contents": [
                    {
                        "role": "user",
                        "parts": [{"fileData": {"fileUri": "gs://b/o.pdf", "mimeType": "application/pdf"}}],
                    }
                ]
            },
            "contents[0].parts[0].fileData",
        ),
        (
            {"contents": [{"role": "model", "parts": [{"executableCode": {"code": "1"}}]}]},
            "contents[0].parts[0]",
        ),
        ({"contents": [{"role": "user", "parts": [{"text": "x", "thought": True}]}]}, "contents"),
    ],
)
def test_what_only_gemini_can_read_is_a_400_on_the_translated_path(body: Any, field: str) -> None:
    with pytest.raises(ClientError) as caught:
        to_openai_body(parse_request(body), "agent", stream=False)
    assert (caught.value.status, caught.value.failure.param) == (400, field)


async def test_built_in_tools_for_a_translated_agent_are_a_400_in_googles_shape(world: World) -> None:
    async with world.sidecar() as url, gemini_client(url, "on-openai") as client:
        with pytest.raises(errors.ClientError) as caught:
            await client.aio.models.generate_content(
                model=MODEL,
                contents="hi",
                config=types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())]),
            )
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert "googleSearch" in (caught.value.message or "")
    assert world.openai.received == []


def test_stream_encoder_buffers_tool_calls_and_closes_with_finish_and_usage() -> None:
    encoder = GeminiStreamEncoder()
    payloads = [orjson.dumps(c) for c in _tool_call_chunks()]
    usage = {
        "prompt_tokens": 9,
        "completion_tokens": 7,
        "completion_tokens_details": {"reasoning_tokens": 2},
        "prompt_tokens_details": {"cached_tokens": 4},
    }
    out = (
        encoder.encode(payloads[:3])
        + encoder.encode(payloads[3:])
        + encoder.encode(
            [orjson.dumps({"id": "chatcmpl-t", "model": "gpt-4o-mini", "choices": [], "usage": usage})]
        )
    )
    out += encoder.close()
    events = [orjson.loads(e.removeprefix(b"data: ")) for e in out.split(b"\r\n\r\n") if e]
    common = {"modelVersion": "gpt-4o-mini", "responseId": "chatcmpl-t"}
    assert events == [
        {
            "candidates": [{"content": {"role": "model", "parts": [{"text": "Checking. "}]}, "index": 0}],
            **common,
        },
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {
                                "functionCall": {
                                    "name": "get_weather",
                                    "args": {"city": "Paris"},
                                    "id": "call_a",
                                }
                            },
                            {
                                "functionCall": {
                                    "name": "get_weather",
                                    "args": {"city": "Oslo"},
                                    "id": "call_b",
                                }
                            },
                        ],
                    },
                    "index": 0,
                }
            ],
            **common,
        },
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": ""}]}, "index": 0, "finishReason": "STOP"}
            ],
            "usageMetadata": {
                "promptTokenCount": 9,
                "candidatesTokenCount": 5,
                "totalTokenCount": 16,
                "cachedContentTokenCount": 4,
                "thoughtsTokenCount": 2,
            },
            **common,
        },
    ]
