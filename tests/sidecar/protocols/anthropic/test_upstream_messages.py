"""The Anthropic adapter's conversation: system hoisting and its cache mark, turn alternation,
tool-call history and images (`astra_sidecar.sidecar.protocols.anthropic.upstream_messages`).
"""

from __future__ import annotations

import orjson
import pytest

from astra_sidecar.sidecar.errors import ClientError
from tests.sidecar.protocols.anthropic.helpers import (
    PNG_B64,
    TIME_TOOL,
    WEATHER_TOOL,
    Json,
    assistant,
    build,
    call,
    chat,
    text,
    tool_result,
    user,
    with_cache,
)

# --- request: system, alternation, tools history -------------------------------------------------


def test_system_and_developer_messages_are_hoisted_in_order() -> None:
    body = build(
        chat(
            {"role": "system", "content": "Agent prompt."},
            {"role": "developer", "content": [text("Dev 1."), text("Dev 2.")]},
            user("Hi"),
            assistant("Hello"),
            {"role": "system", "content": "Late rule."},
            user("Again"),
        )
    )
    assert body["system"] == [text("Agent prompt."), text("Dev 1."), text("Dev 2."), text("Late rule.")]
    assert body["messages"] == [
        {"role": "user", "content": [text("Hi")]},
        {"role": "assistant", "content": [text("Hello")]},
        {"role": "user", "content": [text("Again")]},
    ]


def test_system_prompt_cache_mark_on_the_first_system_message() -> None:
    messages = (
        {"role": "system", "content": ""},
        {"role": "system", "content": [text("Agent A."), text("Agent B.")]},
        {"role": "system", "content": "Client rule."},
        user("Hi"),
    )
    body = build(chat(*messages), agent=with_cache(system_prompt=True))
    assert body["system"] == [
        text("Agent A."),
        {**text("Agent B."), "cache_control": {"type": "ephemeral"}},
        text("Client rule."),
    ]
    assert "cache_control" not in orjson.dumps(build(chat(*messages))).decode()


def test_tool_cache_mark_on_the_last_tool() -> None:
    body = build(chat(user("Hi"), tools=[WEATHER_TOOL, TIME_TOOL]), agent=with_cache(tools=True))
    assert "cache_control" not in body["tools"][0]
    assert body["tools"][1]["cache_control"] == {"type": "ephemeral"}
    both = build(
        chat({"role": "system", "content": "S"}, user("Hi"), tools=[WEATHER_TOOL]),
        agent=with_cache(system_prompt=True, tools=True),
    )
    assert both["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert both["tools"][0]["cache_control"] == {"type": "ephemeral"}


def test_consecutive_turns_merge_and_empty_ones_drop() -> None:
    body = build(
        chat(
            user("one"),
            user([text("two"), text("")]),
            assistant(""),
            assistant("a1"),
            assistant([{"type": "text", "text": "a2"}, {"type": "refusal", "refusal": "no"}]),
            user("three"),
        )
    )
    assert body["messages"] == [
        {"role": "user", "content": [text("one"), text("two")]},
        {"role": "assistant", "content": [text("a1"), text("a2"), text("no")]},
        {"role": "user", "content": [text("three")]},
    ]


def test_conversation_starting_with_assistant_or_empty_gets_a_placeholder_user_turn() -> None:
    body = build(chat({"role": "system", "content": "S"}, assistant("I start."), user("ok")))
    assert body["messages"][0] == {"role": "user", "content": [text(".")]}
    assert body["messages"][1] == {"role": "assistant", "content": [text("I start.")]}
    only_system = build(chat({"role": "system", "content": "S"}))
    assert only_system["messages"] == [{"role": "user", "content": [text(".")]}]


def test_final_assistant_prefill_loses_trailing_whitespace() -> None:
    body = build(chat(user("Answer in JSON"), assistant("{\n  ")))
    assert body["messages"][-1] == {"role": "assistant", "content": [text("{")]}
    blank = build(chat(user("Hi"), assistant("   ")))
    assert blank["messages"] == [{"role": "user", "content": [text("Hi")]}]


def test_tool_history_parallel_calls_and_grouped_results() -> None:
    body = build(
        chat(
            user("Weather and time in Paris?"),
            assistant(
                "Let me check.",
                [
                    call("toolu_01", "get_weather", '{"city": "Paris"}'),
                    call("call_02", "get_time", ""),
                ],
            ),
            tool_result("toolu_01", "18C"),
            tool_result("call_02", [text("12:00")]),
            user("Thanks, and tomorrow?"),
            tools=[WEATHER_TOOL, TIME_TOOL],
        )
    )
    assert body["messages"] == [
        {"role": "user", "content": [text("Weather and time in Paris?")]},
        {
            "role": "assistant",
            "content": [
                text("Let me check."),
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_02", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "call_02", "content": [text("12:00")]},
                text("Thanks, and tomorrow?"),
            ],
        },
    ]


def test_tool_results_go_before_text_in_a_merged_user_turn_and_empty_results_have_no_content() -> None:
    body = build(
        chat(
            user("q"),
            assistant(None, [call("toolu_1", "get_time", "{}")]),
            user("extra context"),
            tool_result("toolu_1", ""),
            tools=[TIME_TOOL],
        )
    )
    assert body["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}, text("extra context")],
    }


@pytest.mark.parametrize("arguments", ['{"city": "Par', "[1, 2]", '"text"'])
def test_invalid_tool_arguments_are_a_client_error(arguments: str) -> None:
    body = chat(
        user("q"), assistant(None, [call("toolu_1", "get_weather", arguments)]), tool_result("toolu_1", "x")
    )
    with pytest.raises(ClientError) as info:
        build(body)
    assert info.value.failure.status == 400
    assert info.value.failure.code == "invalid_tool_arguments"
    assert info.value.failure.param == "messages"


def test_tool_message_without_id_and_unknown_role_are_400() -> None:
    for bad in ({"role": "tool", "content": "x"}, {"role": "function", "name": "f", "content": "x"}):
        with pytest.raises(ClientError) as info:
            build(chat(user("q"), bad))
        assert info.value.failure.status == 400


# --- request: images ----------------------------------------------------------------------------


def test_images_data_and_http_urls() -> None:
    body = build(
        chat(
            user(
                [
                    text("What is in these?"),
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{PNG_B64}", "detail": "high"},
                    },
                    {"type": "image_url", "image_url": {"url": "data:image/jpg;base64,AAAA"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp"}},
                ]
            )
        )
    )
    assert body["messages"][0]["content"] == [
        text("What is in these?"),
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.webp"}},
    ]


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}},
        {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}},
        {"type": "image_url", "image_url": {}},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
        {"type": "file", "file": {"file_id": "file-1"}},
    ],
)
def test_unsupported_or_malformed_parts_are_400(part: Json) -> None:
    with pytest.raises(ClientError) as info:
        build(chat(user([part])))
    assert info.value.failure.status == 400
    assert info.value.failure.param == "messages"


def test_image_part_in_system_message_is_400() -> None:
    part = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    with pytest.raises(ClientError):
        build(chat({"role": "system", "content": [part]}, user("q")))
