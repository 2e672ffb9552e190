"""What the Gemini test files share: clusters and agents for the adapter tests, and the sidecar
world (fake Gemini and OpenAI upstreams, google-genai clients) for the ingress tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa
from google import genai
from google.genai import types
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from astra_sidecar.compiler.table import (
    Agent,
    BreakerPolicy,
    Cluster,
    Credentials,
    RequestRules,
    RetryPolicy,
    Timeouts,
    ToolPolicy,
    VertexTarget,
)
from astra_sidecar.sidecar.protocols.base import AuthMaterial, Secret
from astra_sidecar.sidecar.protocols.gemini.adapter import GeminiAdapter
from astra_sidecar.sidecar.protocols.gemini.request import AI_STUDIO_BASE_URL
from tests.fakes.gemini_upstream import FakeGemini, FakeGoogleOAuth, new_rsa_key
from tests.fakes.openai_upstream import FakeOpenAI
from tests.sidecar.harness import compile_yaml, running_sidecar

#: google-genai subclasses aiohttp's ClientSession, which aiohttp discourages: the SDK's business.
GENAI_WARNINGS = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)

Json = dict[str, Any]
MODEL = "gemini-2.5-flash"

# --- the adapter tests ----------------------------------------------------------------------------

KEY = AuthMaterial(token=Secret("g-key"))
ADAPTER = GeminiAdapter()


def make_cluster(
    *,
    vertex: VertexTarget | None = None,
    base_url: str = AI_STUDIO_BASE_URL,
    model: str = MODEL,
    headers: dict[str, str] | None = None,
) -> Cluster:
    return Cluster(
        key=f"gemini:{model}:{base_url}",
        provider="gemini",
        wire="gemini",
        model_id=model,
        base_url=base_url,
        auth="x-goog-api-key",
        credentials=Credentials(mode="google") if vertex else Credentials(mode="env", env="GEMINI_API_KEY"),
        base_url_env=None,
        headers=MappingProxyType(headers or {}),
        breaker=BreakerPolicy(),
        rules=RequestRules(),
        vertex=vertex,
    )


def make_agent(max_output_tokens: int | None = None) -> Agent:
    return Agent(
        id="helper",
        display_name=None,
        tier=None,
        plan=("gemini",),
        max_context_tokens=None,
        max_output_tokens=max_output_tokens,
        temperature=None,
        system_prompt=None,
        tools=ToolPolicy(),
        retry=RetryPolicy(),
        timeouts=Timeouts(),
        request_timeout_ms=60000,
    )


AI_STUDIO = make_cluster()
VERTEX = make_cluster(vertex=VertexTarget(project="proj-1", location="europe-west4"))


def chat(messages: list[Json], **extra: Any) -> Json:
    return {"model": MODEL, "messages": messages, **extra}


def user(text: str) -> Json:
    return {"role": "user", "content": text}


def translate(body: Json, agent: Agent | None = None, cluster: Cluster = AI_STUDIO) -> Json:
    request = ADAPTER.build_request(cluster, agent or make_agent(), body, KEY)
    parsed: Json = orjson.loads(request.body)
    return parsed


def plain(data: Any, request: Json | None = None) -> ChatCompletion:
    completion = ADAPTER.parse_response(AI_STUDIO, request or chat([user("hi")]), orjson.dumps(data))
    return ChatCompletion.model_validate_json(completion.body)


def reassemble(chunks: Sequence[ChatCompletionChunk], index: int = 0) -> Json:
    content = ""
    calls: dict[int, Json] = {}
    finish = None
    for chunk in chunks:
        for choice in chunk.choices:
            if choice.index != index:
                continue
            content += choice.delta.content or ""
            for call in choice.delta.tool_calls or ():
                slot = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                slot["id"] = call.id or slot["id"]
                if call.function is not None:
                    slot["name"] += call.function.name or ""
                    slot["arguments"] += call.function.arguments or ""
            finish = choice.finish_reason or finish
    return {"content": content, "tool_calls": [calls[k] for k in sorted(calls)], "finish_reason": finish}


def plain_calls(completion: ChatCompletion, index: int = 0) -> list[Json]:
    message = completion.choices[index].message
    return [
        {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}  # type: ignore[union-attr]
        for c in message.tool_calls or ()
    ]


def tool(name: str, parameters: Json | None = None, description: str | None = None) -> Json:
    function: Json = {"name": name}
    if parameters is not None:
        function["parameters"] = parameters
    if description is not None:
        function["description"] = description
    return {"type": "function", "function": function}


# --- the ingress tests: a sidecar between google-genai and fake upstreams -------------------------

#: Its own model id: the compiler keys clusters by provider:model:endpoint, not by credentials mode.
OWN_KEY_MODEL = "gemini-2.5-pro"
GEMINI_KEY = "g-env-key"
OPENAI_KEY = "sk-openai-env"
ENV = {"GEMINI_API_KEY": GEMINI_KEY, "OPENAI_API_KEY": OPENAI_KEY}
VERSIONS = [None, "v1beta"]

WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Current weather",
    parameters=types.Schema(
        type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}, required=["city"]
    ),
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


def tool_call_chunks() -> list[dict[str, Any]]:
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
