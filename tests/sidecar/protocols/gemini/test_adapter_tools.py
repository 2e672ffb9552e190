"""The Gemini adapter's tools, pure: function declarations and schema cleanup, tool choice, the
tool-call history, and the tool-call id / thoughtSignature carrier.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.gemini.ids import call_nonce, decode_call_id, encode_call_id
from astra_sidecar.sidecar.protocols.gemini.schema import clean_parameters
from tests.fakes.gemini_upstream import (
    function_call_response,
)
from tests.sidecar.protocols.gemini.helpers import (
    Json,
    chat,
    plain,
    tool,
    translate,
    user,
)

SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+$")


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
