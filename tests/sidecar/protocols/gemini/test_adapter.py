"""The Gemini adapter, pure: request translation, answers, streams and error classification.

Every translated answer is validated with the official `openai` types; streamed tool calls are
reassembled and compared with the plain answer of the same upstream response.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

import aiohttp
import orjson
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from compiler.table import (
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
from sidecar.errors import ClientError, UpstreamMalformedError, UpstreamStatusError, UpstreamStreamError
from sidecar.protocols.base import AuthMaterial, Failure, Secret
from sidecar.protocols.gemini import (
    AI_STUDIO_BASE_URL,
    GeminiAdapter,
    call_nonce,
    clean_parameters,
    decode_call_id,
    encode_call_id,
    parse_duration,
)
from tests.fakes.gemini_upstream import (
    FakeGemini,
    JsonReply,
    SseReply,
    blocked_prompt_response,
    candidate,
    encode_events,
    function_call_response,
    google_error,
    response,
    safety_response,
    text_response,
    text_stream,
    usage_metadata,
)

Json = dict[str, Any]
MODEL = "gemini-2.5-flash"
KEY = AuthMaterial(token=Secret("g-key"))
ADAPTER = GeminiAdapter()
PLAIN_ID = re.compile(r"^call_[0-9a-f]{24}$")
SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+$")


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


def stream_chunks(
    events: Sequence[Any], pieces: Sequence[int] | None = None, request: Json | None = None
) -> tuple[list[ChatCompletionChunk], Any]:
    """Feed the encoded events split at `pieces` (byte offsets); every chunk is validated."""
    translator = ADAPTER.stream_translator(AI_STUDIO, request or chat([user("hi")], stream=True))
    data = encode_events(events)
    cuts = [0, *(pieces or ()), len(data)]
    payloads: list[bytes] = []
    for start, end in itertools.pairwise(cuts):
        payloads += translator.feed(data[start:end])
    payloads += translator.finish()
    return [ChatCompletionChunk.model_validate_json(p) for p in payloads], translator


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


# --- request: URLs and headers ----------------------------------------------------------------


def test_ai_studio_plain_url_and_key_header() -> None:
    request = ADAPTER.build_request(AI_STUDIO, make_agent(), chat([user("hi")]), KEY)
    assert request.url == f"{AI_STUDIO_BASE_URL}/v1beta/models/{MODEL}:generateContent"
    assert dict(request.headers) == {"Content-Type": "application/json", "x-goog-api-key": "g-key"}
    assert request.stream is False
    assert request.method == "POST"


def test_ai_studio_stream_url_uses_alt_sse() -> None:
    request = ADAPTER.build_request(AI_STUDIO, make_agent(), chat([user("hi")], stream=True), KEY)
    assert request.url == f"{AI_STUDIO_BASE_URL}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
    assert request.headers["Accept"] == "text/event-stream"
    assert request.stream is True


def test_models_prefix_is_stripped_and_extra_headers_kept() -> None:
    cluster = make_cluster(model="models/gemini-2.0-flash", headers={"x-extra": "1"})
    request = ADAPTER.build_request(cluster, make_agent(), chat([user("hi")]), KEY)
    assert request.url == f"{AI_STUDIO_BASE_URL}/v1beta/models/gemini-2.0-flash:generateContent"
    assert request.headers["x-extra"] == "1"


def test_missing_auth_sends_no_auth_header() -> None:
    request = ADAPTER.build_request(AI_STUDIO, make_agent(), chat([user("hi")]), AuthMaterial())
    assert dict(request.headers) == {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("location", "host"),
    [
        ("europe-west4", "https://europe-west4-aiplatform.googleapis.com"),
        ("global", "https://aiplatform.googleapis.com"),
        ("us", "https://aiplatform.us.rep.googleapis.com"),
    ],
)
def test_vertex_url_and_bearer(location: str, host: str) -> None:
    cluster = make_cluster(vertex=VertexTarget(project="proj-1", location=location))
    request = ADAPTER.build_request(cluster, make_agent(), chat([user("hi")], stream=True), KEY)
    assert request.url == (
        f"{host}/v1/projects/proj-1/locations/{location}/publishers/google/models/{MODEL}"
        ":streamGenerateContent?alt=sse"
    )
    assert request.headers["Authorization"] == "Bearer g-key"
    assert "x-goog-api-key" not in request.headers


def test_vertex_custom_base_url_replaces_host() -> None:
    cluster = make_cluster(
        vertex=VertexTarget(project="p", location="us-central1"), base_url="http://127.0.0.1:9999/"
    )
    request = ADAPTER.build_request(cluster, make_agent(), chat([user("hi")]), KEY)
    assert request.url == (
        "http://127.0.0.1:9999/v1/projects/p/locations/us-central1/publishers/google/models/"
        f"{MODEL}:generateContent"
    )


# --- request: messages ------------------------------------------------------------------------


def test_roles_system_instruction_and_merged_turns() -> None:
    body = chat(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            user("Hello"),
            {"role": "user", "content": [{"type": "text", "text": "there"}]},
            {"role": "assistant", "content": "Bonjour"},
            {"role": "assistant", "content": None},
            user(""),
            user("Again"),
        ]
    )
    assert translate(body) == {
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Answer in French."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Hello"}, {"text": "there"}]},
            {"role": "model", "parts": [{"text": "Bonjour"}]},
            {"role": "user", "parts": [{"text": "Again"}]},
        ],
    }


def test_generation_config_maps_every_parameter() -> None:
    body = chat(
        [user("hi")],
        max_completion_tokens=300,
        max_tokens=999,
        temperature=1.4,
        top_p=0.9,
        stop="END",
        n=2,
        seed=42,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        user="someone",
        logit_bias={"1": 2},
        stream_options={"include_usage": True},
    )
    assert translate(body)["generationConfig"] == {
        "maxOutputTokens": 300,
        "temperature": 1.4,
        "topP": 0.9,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "seed": 42,
        "presencePenalty": 0.5,
        "frequencyPenalty": -0.5,
    }


def test_max_tokens_falls_back_to_legacy_field_then_agent() -> None:
    legacy = translate(chat([user("hi")], max_tokens=64, stop=["a", "b"]))["generationConfig"]
    assert legacy == {"maxOutputTokens": 64, "stopSequences": ["a", "b"]}
    from_agent = translate(chat([user("hi")]), agent=make_agent(max_output_tokens=128))
    assert from_agent["generationConfig"] == {"maxOutputTokens": 128}
    assert "generationConfig" not in translate(chat([user("hi")], n=1))


def test_json_object_mode() -> None:
    body = chat([user("hi")], response_format={"type": "json_object"})
    assert translate(body)["generationConfig"] == {"responseMimeType": "application/json"}


def test_json_schema_mode_sends_full_json_schema() -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    body = chat(
        [user("hi")],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "a", "schema": schema, "strict": True},
        },
    )
    assert translate(body)["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }
    assert "generationConfig" not in translate(chat([user("hi")], response_format={"type": "text"}))


# --- request: images and other media ------------------------------------------------------------


def test_images_data_url_inline_and_remote_url_as_file_data() -> None:
    body = chat(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/cat.WEBP?x=1", "detail": "low"},
                    },
                    {"type": "image_url", "image_url": {"url": "https://example.com/render"}},
                    {"type": "image_url", "image_url": {"url": "gs://bucket/doc.pdf"}},
                    {"type": "image_url", "image_url": {"url": "data:text/plain,hi%20there"}},
                ],
            }
        ]
    )
    assert translate(body)["contents"][0]["parts"] == [
        {"text": "Compare"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.WEBP?x=1"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/render"}},
        {"fileData": {"mimeType": "application/pdf", "fileUri": "gs://bucket/doc.pdf"}},
        {"inlineData": {"mimeType": "text/plain", "data": "aGkgdGhlcmU="}},
    ]


def test_audio_and_inline_files() -> None:
    body = chat(
        [
            {
                "role": "user",
                "content": [
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                    {
                        "type": "file",
                        "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
                    },
                    {"type": "file", "file": {"file_data": "JVBERi0=", "filename": "b.pdf"}},
                ],
            }
        ]
    )
    assert translate(body)["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
    ]


@pytest.mark.parametrize(
    "part",
    [
        {"type": "file", "file": {"file_id": "file-123"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64"}},
        {"type": "video_url", "video_url": {"url": "x"}},
    ],
)
def test_untranslatable_parts_are_client_errors(part: Json) -> None:
    with pytest.raises(ClientError) as caught:
        translate(chat([{"role": "user", "content": [part]}]))
    assert caught.value.status == 400
    assert caught.value.failure.retryable is False
    assert caught.value.failure.param == "messages[0].content[0]"


# --- request: tools -----------------------------------------------------------------------------

WEATHER_SCHEMA: Json = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "city": {"type": "string", "description": "City", "minLength": 1},
        "unit": {"enum": ["c", "f"]},
        "when": {"type": "string", "format": "date-time"},
        "email": {"type": "string", "format": "email"},
        "days": {"type": ["integer", "null"], "exclusiveMinimum": 0, "maximum": 14},
        "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "mode": {"const": "fast"},
        "place": {"$ref": "#/$defs/Place"},
        "either": {"oneOf": [{"type": "string"}, {"type": "number", "format": "double"}]},
        "maybe": {"anyOf": [{"$ref": "#/$defs/Place"}, {"type": "null"}], "description": "optional place"},
        "levels": {"type": "array", "items": {"type": "integer", "enum": [1, 2, 3]}},
    },
    "required": ["city", "ghost", "city"],
    "$defs": {
        "Place": {
            "type": "object",
            "properties": {"lat": {"type": "number"}, "next": {"$ref": "#/$defs/Place"}},
            "required": ["lat"],
        }
    },
}

PLACE = {
    "type": "OBJECT",
    "properties": {"lat": {"type": "NUMBER"}, "next": {"type": "OBJECT"}},
    "required": ["lat"],
}


def test_schema_cleanup_to_gemini_subset() -> None:
    assert clean_parameters(WEATHER_SCHEMA) == {
        "type": "OBJECT",
        "properties": {
            "city": {"type": "STRING", "description": "City", "minLength": 1},
            "unit": {"type": "STRING", "enum": ["c", "f"], "format": "enum"},
            "when": {"type": "STRING", "format": "date-time"},
            "email": {"type": "STRING"},
            "days": {"type": "INTEGER", "maximum": 14, "nullable": True},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
            "mode": {"type": "STRING", "enum": ["fast"], "format": "enum"},
            "place": PLACE,
            "either": {"anyOf": [{"type": "STRING"}, {"type": "NUMBER", "format": "double"}]},
            "maybe": {**PLACE, "description": "optional place", "nullable": True},
            "levels": {"type": "ARRAY", "items": {"type": "INTEGER"}},
        },
        "required": ["city"],
    }


def test_schema_cleanup_all_of_and_multi_type() -> None:
    schema = {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"properties": {"b": {"type": ["string", "integer"]}}, "required": ["b"]},
        ]
    }
    assert clean_parameters(schema) == {
        "type": "OBJECT",
        "properties": {"a": {"type": "STRING"}, "b": {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]}},
        "required": ["a", "b"],
    }


@pytest.mark.parametrize("schema", [None, {}, {"type": "object"}, {"type": "object", "properties": {}}])
def test_argumentless_function_has_no_parameters(schema: Any) -> None:
    assert clean_parameters(schema) is None


def tool(name: str, parameters: Json | None = None, description: str | None = None) -> Json:
    function: Json = {"name": name}
    if parameters is not None:
        function["parameters"] = parameters
    if description is not None:
        function["description"] = description
    return {"type": "function", "function": function}


def test_function_declarations() -> None:
    body = chat(
        [user("hi")],
        tools=[
            tool("get_weather", WEATHER_SCHEMA, "Weather"),
            tool("now", {"type": "object", "properties": {}}),
        ],
    )
    translated = translate(body)
    assert translated["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather",
                    "parameters": clean_parameters(WEATHER_SCHEMA),
                },
                {"name": "now"},
            ]
        }
    ]
    assert translated["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        ({"type": "function", "function": {"name": "b"}}, {"mode": "ANY", "allowedFunctionNames": ["b"]}),
    ],
)
def test_tool_choice(choice: Any, config: Json) -> None:
    translated = translate(chat([user("hi")], tools=[tool("a"), tool("b")], tool_choice=choice))
    assert translated["toolConfig"] == {"functionCallingConfig": config}


def test_allowed_tools_filters_declarations() -> None:
    choice = {
        "type": "allowed_tools",
        "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "b"}}]},
    }
    translated = translate(chat([user("hi")], tools=[tool("a"), tool("b")], tool_choice=choice))
    assert translated["tools"] == [{"functionDeclarations": [{"name": "b"}]}]
    assert translated["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


def test_custom_tools_are_rejected() -> None:
    with pytest.raises(ClientError):
        translate(chat([user("hi")], tools=[{"type": "custom", "custom": {"name": "x"}}]))


def test_tool_history_functioncall_and_grouped_function_responses() -> None:
    body = chat(
        [
            user("Weather in Paris and Oslo?"),
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "12:00"}]},
            user("Thanks"),
        ]
    )
    assert translate(body)["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris and Oslo?"}]},
        {
            "role": "model",
            "parts": [
                {"text": "Checking."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"output": "18C"}}},
                {"functionResponse": {"name": "get_time", "response": {"output": "12:00"}}},
            ],
        },
        {"role": "user", "parts": [{"text": "Thanks"}]},
    ]


def assistant_calls(*calls: tuple[str, str, str]) -> Json:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in calls
        ],
    }


def test_unknown_tool_call_id_is_a_client_error() -> None:
    body = chat(
        [
            user("x"),
            assistant_calls(("call_a", "f", "{}")),
            {"role": "tool", "tool_call_id": "nope", "content": "1"},
        ]
    )
    with pytest.raises(ClientError) as caught:
        translate(body)
    assert caught.value.status == 400
    assert caught.value.failure.param == "messages[2]"


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]"])
def test_invalid_history_arguments_are_client_errors(arguments: str) -> None:
    with pytest.raises(ClientError):
        translate(chat([user("x"), assistant_calls(("call_a", "f", arguments))]))


# --- tool-call ids and thoughtSignature ------------------------------------------------------------


def test_call_id_codec() -> None:
    nonce = call_nonce("resp-9", 0, 1)
    assert nonce == call_nonce("resp-9", 0, 1) != call_nonce("resp-9", 0, 2)
    assert re.fullmatch(r"[0-9a-f]{24}", nonce)
    assert encode_call_id(nonce, None, None) == "call_" + nonce
    carried = encode_call_id(nonce, "fc-1", "c2ln+/==")
    assert SAFE_ID.match(carried)
    assert decode_call_id(carried) == ("fc-1", "c2ln+/==")
    assert decode_call_id(encode_call_id(nonce, None, "sig")) == (None, "sig")
    assert decode_call_id("call_" + nonce) == (None, None)
    assert decode_call_id("call_gx" + "0" * 24 + "!!!") == (None, None)
    assert decode_call_id("toolu_01ABC") == (None, None)


def test_thought_signature_and_gemini_ids_round_trip() -> None:
    answer = plain(
        function_call_response(
            [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "CET"})],
            signature="c2lnbmF0dXJl+/=",
            ids=["fc-1", "fc-2"],
        )
    )
    calls = answer.choices[0].message.tool_calls or []
    assert all(SAFE_ID.match(c.id) for c in calls)
    history = [
        user("Weather?"),
        {"role": "assistant", "content": None, "tool_calls": [c.model_dump() for c in calls]},
        {"role": "tool", "tool_call_id": calls[0].id, "content": "18C"},
        {"role": "tool", "tool_call_id": calls[1].id, "content": "12:00"},
    ]
    contents = translate(chat(history))["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}, "id": "fc-1"},
                "thoughtSignature": "c2lnbmF0dXJl+/=",
            },
            {"functionCall": {"name": "get_time", "args": {"tz": "CET"}, "id": "fc-2"}},
        ],
    }
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"output": "18C"}, "id": "fc-1"}},
        {"functionResponse": {"name": "get_time", "response": {"output": "12:00"}, "id": "fc-2"}},
    ]


def test_signature_without_gemini_id_round_trips_without_id() -> None:
    answer = plain(function_call_response([("f", {})], signature="sig"))
    call = (answer.choices[0].message.tool_calls or [])[0]
    contents = translate(
        chat([user("x"), {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]}])
    )["contents"]
    assert contents[1]["parts"] == [{"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "sig"}]


# --- plain answers ------------------------------------------------------------------------------


def test_plain_text_answer() -> None:
    data = response(
        [candidate([{"text": "Hel"}, {"text": "lo", "thoughtSignature": "s"}])], usage=usage_metadata(10, 4)
    )
    completion = ADAPTER.parse_response(AI_STUDIO, chat([user("hi")]), orjson.dumps(data))
    parsed = ChatCompletion.model_validate_json(completion.body)
    assert parsed.id == "chatcmpl-resp-1"
    assert parsed.model == MODEL
    assert parsed.choices[0].message.content == "Hello"
    assert parsed.choices[0].message.tool_calls is None
    assert parsed.choices[0].finish_reason == "stop"
    assert orjson.loads(completion.body)["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 4,
        "total_tokens": 14,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (10, 4)


def test_thought_parts_are_hidden() -> None:
    data = response([candidate([{"text": "pondering", "thought": True}, {"text": "42"}])])
    assert plain(data).choices[0].message.content == "42"


def test_single_tool_call_sets_tool_calls_finish() -> None:
    parsed = plain(function_call_response([("get_weather", {"city": "Paris", "days": 2})]))
    choice = parsed.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert plain_calls(parsed) == [
        {
            "id": "call_" + call_nonce("resp-1", 0, 0),
            "name": "get_weather",
            "arguments": '{"city":"Paris","days":2}',
        }
    ]
    assert PLAIN_ID.match(plain_calls(parsed)[0]["id"])


def test_parallel_tool_calls_with_text() -> None:
    parsed = plain(function_call_response([("a", {"x": 1}), ("b", {})], text="Let me check."))
    assert parsed.choices[0].message.content == "Let me check."
    calls = plain_calls(parsed)
    assert [(c["name"], c["arguments"]) for c in calls] == [("a", '{"x":1}'), ("b", "{}")]
    assert len({c["id"] for c in calls}) == 2
    assert parsed.choices[0].finish_reason == "tool_calls"


def test_ids_are_random_without_response_id() -> None:
    data = function_call_response([("a", {})])
    del data["responseId"]
    first, second = plain_calls(plain(data))[0]["id"], plain_calls(plain(data))[0]["id"]
    assert PLAIN_ID.match(first) and first != second


def test_usage_with_cached_thoughts_and_tool_use_tokens() -> None:
    data = text_response("ok", usage=usage_metadata(1000, 50, cached=800, thoughts=120, tool_use=30))
    completion = ADAPTER.parse_response(AI_STUDIO, chat([user("hi")]), orjson.dumps(data))
    ChatCompletion.model_validate_json(completion.body)
    assert orjson.loads(completion.body)["usage"] == {
        "prompt_tokens": 1030,
        "completion_tokens": 170,
        "total_tokens": 1200,
        "prompt_tokens_details": {"cached_tokens": 800},
        "completion_tokens_details": {"reasoning_tokens": 120},
    }
    assert completion.usage is not None
    assert completion.usage.cached_tokens == 800


@pytest.mark.parametrize(
    ("finish", "expected"),
    [
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("OTHER", "stop"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
    ],
)
def test_finish_reasons(finish: str, expected: str) -> None:
    assert plain(text_response("x", finish=finish)).choices[0].finish_reason == expected


def test_safety_finish_without_content() -> None:
    parsed = plain(safety_response(usage=usage_metadata(5, 0)))
    assert parsed.choices[0].finish_reason == "content_filter"
    assert parsed.choices[0].message.content == ""


def test_blocked_prompt_is_content_filter_with_empty_content() -> None:
    parsed = plain(blocked_prompt_response("PROHIBITED_CONTENT", usage=usage_metadata(5, 0)))
    assert len(parsed.choices) == 1
    assert parsed.choices[0].finish_reason == "content_filter"
    assert parsed.choices[0].message.content == ""
    assert parsed.usage is not None and parsed.usage.prompt_tokens == 5


def test_multiple_candidates_become_choices() -> None:
    data = response([candidate([{"text": "B"}], index=1), candidate([{"text": "A"}], "MAX_TOKENS", index=0)])
    parsed = plain(data, chat([user("hi")], n=2))
    assert [(c.index, c.message.content, c.finish_reason) for c in parsed.choices] == [
        (0, "A", "length"),
        (1, "B", "stop"),
    ]


def test_malformed_answer_is_a_malformed_failure() -> None:
    with pytest.raises(UpstreamMalformedError) as caught:
        ADAPTER.parse_response(AI_STUDIO, chat([user("hi")]), b"<html>")
    assert caught.value.failure.retryable is True
    assert caught.value.cluster == AI_STUDIO.key


def test_error_body_with_200_is_a_status_error() -> None:
    raw = orjson.dumps(google_error(503, "UNAVAILABLE", "overloaded", wrapped=True))
    with pytest.raises(UpstreamStatusError) as caught:
        ADAPTER.parse_response(AI_STUDIO, chat([user("hi")]), raw)
    assert caught.value.failure.status == 503
    assert caught.value.failure.retryable is True


# --- streams ----------------------------------------------------------------------------------


def test_text_stream_without_usage_option() -> None:
    events = text_stream(["Hel", "lo ", "wörld 🌍"], usage=usage_metadata(4, 3))
    chunks, translator = stream_chunks(events)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert reassemble(chunks) == {"content": "Hello wörld 🌍", "tool_calls": [], "finish_reason": "stop"}
    assert all(c.usage is None for c in chunks)
    assert all("usage" not in orjson.loads(c.model_dump_json(exclude_unset=True)) for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].choices[0].delta.content is None
    assert len({c.id for c in chunks}) == 1
    assert translator.usage is not None and translator.usage.completion_tokens == 3


def test_stream_usage_chunk_last_and_latest_usage_wins() -> None:
    events = [
        response([candidate([{"text": "a"}], None)], usage=usage_metadata(9, 1)),
        response([candidate([{"text": "b"}], "STOP")], usage=usage_metadata(9, 2, cached=4, thoughts=5)),
    ]
    request = chat([user("hi")], stream=True, stream_options={"include_usage": True})
    translator = ADAPTER.stream_translator(AI_STUDIO, request)
    payloads = translator.feed(encode_events(events)) + translator.finish()
    chunks = [ChatCompletionChunk.model_validate_json(p) for p in payloads]
    for raw in payloads[:-1]:
        assert orjson.loads(raw)["usage"] is None
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert orjson.loads(payloads[-1])["usage"] == {
        "prompt_tokens": 9,
        "completion_tokens": 7,
        "total_tokens": 16,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 5},
    }
    assert translator.usage is not None and translator.usage.cached_tokens == 4


def tool_events() -> list[Json]:
    usage = usage_metadata(20, 8)
    first = response([candidate([{"text": "Checking "}], None)], usage=usage)
    calls = function_call_response(
        [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "Europe/Paris"})],
        signature="c2ln",
        ids=None,
        usage=usage,
    )
    return [first, calls]


def test_streamed_tool_calls_equal_plain_result_at_every_split() -> None:
    events = tool_events()
    merged = response(
        [candidate([{"text": "Checking "}, *events[1]["candidates"][0]["content"]["parts"]])],
        usage=usage_metadata(20, 8),
    )
    expected_calls = plain_calls(plain(merged))
    assert [c["name"] for c in expected_calls] == ["get_weather", "get_time"]
    data = encode_events(events)
    for cut in range(1, len(data)):
        chunks, _ = stream_chunks(events, [cut])
        assert reassemble(chunks) == {
            "content": "Checking ",
            "tool_calls": expected_calls,
            "finish_reason": "tool_calls",
        }


def test_stream_fed_byte_by_byte() -> None:
    events = text_stream(["żółw ", "🐢"], usage=usage_metadata(1, 2))
    data = encode_events(events)
    chunks, _ = stream_chunks(events, list(range(1, len(data))))
    assert reassemble(chunks)["content"] == "żółw 🐢"


def test_streamed_tool_call_chunk_shape() -> None:
    chunks, _ = stream_chunks([function_call_response([("f", {"a": 1})])])
    call_chunks = [c for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert len(call_chunks) == 1
    delta = call_chunks[0].choices[0].delta.tool_calls[0]  # type: ignore[index]
    assert (delta.index, delta.type, delta.function.name, delta.function.arguments) == (  # type: ignore[union-attr]
        0,
        "function",
        "f",
        '{"a":1}',
    )
    assert PLAIN_ID.match(delta.id or "")


def test_stream_safety_finish() -> None:
    events = [response([candidate([{"text": "Sure, "}], None)]), safety_response()]
    chunks, _ = stream_chunks(events)
    assert reassemble(chunks) == {"content": "Sure, ", "tool_calls": [], "finish_reason": "content_filter"}


def test_stream_blocked_prompt() -> None:
    chunks, translator = stream_chunks([blocked_prompt_response(usage=usage_metadata(3, 0))])
    assert [c.choices[0].delta.role for c in chunks] == ["assistant", None]
    assert reassemble(chunks) == {"content": "", "tool_calls": [], "finish_reason": "content_filter"}
    assert translator.usage is not None and translator.usage.prompt_tokens == 3


def test_stream_with_two_candidates() -> None:
    events = [
        response([candidate([{"text": "A"}], None, 0), candidate([{"text": "B"}], None, 1)]),
        response([candidate([{"text": "a"}], "STOP", 0), candidate([{"text": "b"}], "MAX_TOKENS", 1)]),
    ]
    chunks, _ = stream_chunks(events)
    assert reassemble(chunks, 0) == {"content": "Aa", "tool_calls": [], "finish_reason": "stop"}
    assert reassemble(chunks, 1) == {"content": "Bb", "tool_calls": [], "finish_reason": "length"}


@pytest.mark.parametrize(
    "events",
    [
        [],
        [response([candidate([{"text": "partial"}], None)], usage=usage_metadata(1, 1))],
        [
            response([candidate([{"text": "A"}], "STOP", 0), candidate([{"text": "B"}], None, 1)]),
        ],
    ],
)
def test_stream_without_finish_reason_is_a_cut(events: list[Json]) -> None:
    translator = ADAPTER.stream_translator(AI_STUDIO, chat([user("hi")], stream=True))
    translator.feed(encode_events(events))
    with pytest.raises(UpstreamStreamError) as caught:
        translator.finish()
    assert caught.value.cluster == AI_STUDIO.key
    assert caught.value.failure.status == 502


def test_stream_error_event_mid_stream() -> None:
    translator = ADAPTER.stream_translator(AI_STUDIO, chat([user("hi")], stream=True))
    first = translator.feed(encode_events([response([candidate([{"text": "Hi"}], None)])]))
    assert len(first) == 2
    error = google_error(429, "RESOURCE_EXHAUSTED", "slow down", retry_delay="2s", wrapped=True)
    with pytest.raises(UpstreamStreamError) as caught:
        translator.feed(encode_events([error]))
    assert caught.value.failure == Failure(
        status=429,
        error_type="rate_limit_error",
        message="slow down",
        code="RESOURCE_EXHAUSTED",
        retryable=True,
        breaker_counts=True,
        retry_after_s=2.0,
    )


def test_stream_malformed_chunk() -> None:
    translator = ADAPTER.stream_translator(AI_STUDIO, chat([user("hi")], stream=True))
    with pytest.raises(UpstreamStreamError):
        translator.feed(b"data: {not json\n\n")


# --- error classification --------------------------------------------------------------------------


def classify(status: int, body: Any, headers: dict[str, str] | None = None) -> Failure:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return ADAPTER.classify_error(AI_STUDIO, status, headers or {}, raw)


def test_rate_limit_with_retry_info() -> None:
    body = google_error(
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded",
        retry_delay="38.6s",
        quota_id="GenerateRequestsPerMinutePerProject",
    )
    assert classify(429, body) == Failure(
        status=429,
        error_type="rate_limit_error",
        message="Quota exceeded",
        code="RESOURCE_EXHAUSTED",
        retryable=True,
        breaker_counts=True,
        retry_after_s=38.6,
    )


def test_daily_quota_is_not_retried() -> None:
    body = google_error(
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded",
        retry_delay="10s",
        quota_id="GenerateRequestsPerDayPerProjectPerModel",
    )
    assert classify(429, body) == Failure(
        status=429,
        error_type="insufficient_quota",
        message="Quota exceeded",
        code="insufficient_quota",
        retryable=False,
        breaker_counts=True,
        retry_after_s=10.0,
    )


@pytest.mark.parametrize(
    ("status", "rpc", "error_type"),
    [
        (503, "UNAVAILABLE", "server_error"),
        (500, "INTERNAL", "server_error"),
        (504, "DEADLINE_EXCEEDED", "timeout"),
    ],
)
def test_transient_statuses_are_retryable(status: int, rpc: str, error_type: str) -> None:
    failure = classify(status, google_error(status, rpc, "try later", wrapped=True))
    assert failure == Failure(
        status=status,
        error_type=error_type,
        message="try later",
        code=rpc,
        retryable=True,
        breaker_counts=True,
        retry_after_s=None,
    )


@pytest.mark.parametrize(
    ("status", "rpc", "error_type"),
    [
        (400, "INVALID_ARGUMENT", "invalid_request_error"),
        (400, "FAILED_PRECONDITION", "invalid_request_error"),
        (403, "PERMISSION_DENIED", "permission_error"),
        (404, "NOT_FOUND", "not_found_error"),
    ],
)
def test_client_side_statuses_are_not_retryable(status: int, rpc: str, error_type: str) -> None:
    failure = classify(status, google_error(status, rpc, "RESOURCE_EXHAUSTED UNAVAILABLE in the text"))
    assert failure == Failure(
        status=status,
        error_type=error_type,
        message="RESOURCE_EXHAUSTED UNAVAILABLE in the text",
        code=rpc,
        retryable=False,
        breaker_counts=False,
    )


def test_invalid_api_key_becomes_401() -> None:
    body = google_error(400, "INVALID_ARGUMENT", "API key not valid.", reason="API_KEY_INVALID")
    assert classify(400, body) == Failure(
        status=401,
        error_type="authentication_error",
        message="API key not valid.",
        code="API_KEY_INVALID",
    )


def test_non_google_body_falls_back_to_http_status() -> None:
    failure = classify(502, b"<html>Bad Gateway</html>", {"retry-after": "3"})
    assert failure == Failure(
        status=502,
        error_type="server_error",
        message="gemini returned HTTP 502",
        code="502",
        retryable=True,
        breaker_counts=True,
        retry_after_s=3.0,
    )
    assert classify(413, b"") == Failure(
        status=413, error_type="invalid_request_error", message="gemini returned HTTP 413", code="413"
    )


def test_error_without_rpc_status_uses_http_status() -> None:
    failure = classify(503, {"error": {"code": 503, "message": "busy"}})
    assert (failure.status, failure.code, failure.retryable) == (503, "503", True)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("38.6s", 38.6),
        ("1s", 1.0),
        ("0.5s", 0.5),
        ({"seconds": 2, "nanos": 500000000}, 2.5),
        ("soon", None),
        (7, None),
    ],
)
def test_parse_duration(value: Any, seconds: float | None) -> None:
    assert parse_duration(value) == seconds


# --- against the fake upstream (real sockets on loopback) ------------------------------------------


@pytest.fixture
async def fake_gemini(aiohttp_server: Any) -> tuple[FakeGemini, str]:
    fake = FakeGemini(api_key="g-key", bearer="g-key")
    server = await aiohttp_server(fake.app())
    return fake, str(server.make_url("")).rstrip("/")


async def send(cluster: Cluster, body: Json) -> tuple[int, bytes, list[bytes]]:
    """POST the adapter's request to the fake; plain → (status, body, []), stream → (status, b"", pieces)."""
    request = ADAPTER.build_request(cluster, make_agent(), body, KEY)
    async with (
        aiohttp.ClientSession() as session,
        session.post(request.url, data=request.body, headers=dict(request.headers)) as resp,
    ):
        if not request.stream or resp.status != 200:
            return resp.status, await resp.read(), []
        pieces = [piece async for piece in resp.content.iter_any()]
        return resp.status, b"", pieces


async def test_fake_round_trip_ai_studio_plain(fake_gemini: tuple[FakeGemini, str]) -> None:
    fake, url = fake_gemini
    cluster = make_cluster(base_url=url)
    fake.enqueue(
        JsonReply(function_call_response([("get_weather", {"city": "Oslo"})], usage=usage_metadata(5, 2)))
    )
    status, raw, _ = await send(cluster, chat([user("Weather in Oslo?")], tools=[tool("get_weather")]))
    assert status == 200
    parsed = ChatCompletion.model_validate_json(ADAPTER.parse_response(cluster, chat([]), raw).body)
    assert plain_calls(parsed)[0]["arguments"] == '{"city":"Oslo"}'
    recorded = fake.requests[0]
    assert (recorded.surface, recorded.model, recorded.method) == ("ai_studio", MODEL, "generateContent")
    assert recorded.body["contents"] == [{"role": "user", "parts": [{"text": "Weather in Oslo?"}]}]
    assert recorded.headers["x-goog-api-key"] == "g-key"


async def test_fake_round_trip_vertex_stream(fake_gemini: tuple[FakeGemini, str]) -> None:
    fake, url = fake_gemini
    cluster = make_cluster(vertex=VertexTarget("proj-1", "us-central1"), base_url=url)
    fake.enqueue(SseReply(text_stream(["Hel", "lo"], usage=usage_metadata(3, 2)), piece_size=7))
    request = chat([user("hi")], stream=True, stream_options={"include_usage": True})
    status, _, pieces = await send(cluster, request)
    assert status == 200
    translator = ADAPTER.stream_translator(cluster, request)
    payloads = [p for piece in pieces for p in translator.feed(piece)] + translator.finish()
    chunks = [ChatCompletionChunk.model_validate_json(p) for p in payloads]
    assert reassemble(chunks)["content"] == "Hello"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 5
    recorded = fake.requests[0]
    assert (recorded.surface, recorded.project, recorded.location) == ("vertex", "proj-1", "us-central1")
    assert recorded.query == {"alt": "sse"}
    assert recorded.headers["Authorization"] == "Bearer g-key"


async def test_fake_error_bodies_and_auth(fake_gemini: tuple[FakeGemini, str]) -> None:
    fake, url = fake_gemini
    cluster = make_cluster(base_url=url)
    fake.enqueue(JsonReply(google_error(429, "RESOURCE_EXHAUSTED", "quota", retry_delay="1.5s"), status=429))
    status, raw, _ = await send(cluster, chat([user("hi")]))
    failure = ADAPTER.classify_error(cluster, status, {}, raw)
    assert (failure.status, failure.retryable, failure.retry_after_s) == (429, True, 1.5)
    request = ADAPTER.build_request(
        cluster, make_agent(), chat([user("hi")]), AuthMaterial(token=Secret("bad"))
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(request.url, data=request.body, headers=dict(request.headers)) as resp,
    ):
        failure = ADAPTER.classify_error(cluster, resp.status, resp.headers, await resp.read())
    assert (failure.status, failure.code) == (401, "API_KEY_INVALID")


async def test_fake_echo_default_and_clean_eof_without_finish(fake_gemini: tuple[FakeGemini, str]) -> None:
    fake, url = fake_gemini
    cluster = make_cluster(base_url=url)
    _, raw, _ = await send(cluster, chat([user("ping")]))
    parsed = ChatCompletion.model_validate_json(ADAPTER.parse_response(cluster, chat([]), raw).body)
    assert parsed.choices[0].message.content == "echo: ping"
    fake.enqueue(SseReply([response([candidate([{"text": "par"}], None)])]))
    request = chat([user("hi")], stream=True)
    _, _, pieces = await send(cluster, request)
    translator = ADAPTER.stream_translator(cluster, request)
    assert [p for piece in pieces for p in translator.feed(piece)]
    with pytest.raises(UpstreamStreamError):
        translator.finish()


async def test_fake_abort_drops_the_connection(fake_gemini: tuple[FakeGemini, str]) -> None:
    fake, url = fake_gemini
    cluster = make_cluster(base_url=url)
    fake.enqueue(SseReply([response([candidate([{"text": "par"}], None)])], abort=True))
    with pytest.raises(aiohttp.ClientPayloadError):
        await send(cluster, chat([user("hi")], stream=True))
