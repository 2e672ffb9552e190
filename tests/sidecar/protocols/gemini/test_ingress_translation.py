"""The Gemini ingress's translation details: canonical field names, function responses matched to
calls, what only Gemini can read, and the stream encoder.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from google.genai import errors, types

from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.gemini.ingress_request import parse_request
from astra_sidecar.sidecar.protocols.gemini.ingress_stream import GeminiStreamEncoder
from astra_sidecar.sidecar.protocols.gemini.ingress_translate import to_openai_body
from tests.sidecar.protocols.gemini.helpers import (
    GENAI_WARNINGS,
    HI,
    MODEL,
    World,
    gemini_client,
    tool_call_chunks,
)

pytestmark = GENAI_WARNINGS


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
    payloads = [orjson.dumps(c) for c in tool_call_chunks()]
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
