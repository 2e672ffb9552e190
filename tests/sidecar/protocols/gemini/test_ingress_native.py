"""The Gemini ingress, same format: Gemini agents (AI Studio and Vertex) get the request natively,
with the agent's policy applied in Gemini's shape. The client is the official google-genai SDK,
with its default API version (v1) and with v1beta.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from google.genai import types

from tests.fakes.gemini_upstream import (
    JsonReply,
    SseReply,
    function_call_response,
    text_response,
    text_stream,
    usage_metadata,
    write_service_account,
)
from tests.sidecar.harness import compile_yaml, running_sidecar
from tests.sidecar.protocols.gemini.helpers import (
    GEMINI_KEY,
    GENAI_WARNINGS,
    HI,
    MODEL,
    VERSIONS,
    WEATHER,
    World,
    ask,
    ask_stream,
    gemini_client,
    post,
    text_of,
)

pytestmark = GENAI_WARNINGS


DELETE = types.FunctionDeclaration(
    name="delete_account", parameters_json_schema={"type": "object", "properties": {}}
)


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
