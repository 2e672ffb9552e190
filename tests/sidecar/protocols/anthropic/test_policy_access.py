"""The agent policy's accessors for Anthropic Messages bodies (`policy_access.ACCESS`): each pins
what the native path did before the policy was written once (`test_native_policy.py` checks the
same through `AgentPolicy`)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from astra_sidecar.compiler.table import PromptCache
from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.anthropic.policy_access import ACCESS
from tests.sidecar.protocols.anthropic.helpers import USER, WEATHER, Json

EPHEMERAL = {"type": "ephemeral"}
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search"}
DELETE = {"name": "delete_account", "input_schema": {"type": "object", "properties": {}}}
BOTH = PromptCache(system_prompt=True, tools=True)


def refusing(*names: str) -> Any:
    return lambda name: name in names


def marked(text: str = "m") -> Json:
    return {"type": "text", "text": text, "cache_control": dict(EPHEMERAL)}


# --- tools --------------------------------------------------------------------------------------


def test_remove_tools_filters_by_name_server_tools_included() -> None:
    body = {"messages": USER, "tools": [WEATHER, WEB_SEARCH, DELETE], "tool_choice": {"type": "auto"}}
    removed = ACCESS.remove_tools(body, refusing("delete_account", "web_search"))
    assert removed == ("web_search", "delete_account")
    assert body["tools"] == [WEATHER]
    assert body["tool_choice"] == {"type": "auto"}


def test_remove_tools_without_a_refused_tool_changes_nothing() -> None:
    tools = [WEATHER, DELETE]
    body = {"messages": USER, "tools": tools, "tool_choice": {"type": "any"}}
    assert ACCESS.remove_tools(body, refusing("other")) == ()
    assert body == {"messages": USER, "tools": tools, "tool_choice": {"type": "any"}}
    assert body["tools"] is tools
    assert ACCESS.remove_tools({"messages": USER}, refusing("other")) == ()


def test_removing_every_tool_drops_tools_and_tool_choice() -> None:
    body = {"messages": USER, "tools": [DELETE], "tool_choice": {"type": "any"}}
    assert ACCESS.remove_tools(body, refusing("delete_account")) == ("delete_account",)
    assert body == {"messages": USER}


def test_forcing_a_removed_tool_is_a_400() -> None:
    body = {
        "messages": USER,
        "tools": [WEATHER, DELETE],
        "tool_choice": {"type": "tool", "name": "delete_account"},
    }
    with pytest.raises(ClientError) as caught:
        ACCESS.remove_tools(body, refusing("delete_account"))
    failure = caught.value.failure
    assert (failure.status, failure.param, failure.code) == (400, "tool_choice", "tool_not_allowed")
    assert failure.message == "tool 'delete_account' is not allowed for this agent"


def test_forcing_a_kept_tool_is_fine() -> None:
    body = {
        "messages": USER,
        "tools": [WEATHER, DELETE],
        "tool_choice": {"type": "tool", "name": "get_weather"},
    }
    assert ACCESS.remove_tools(body, refusing("delete_account")) == ("delete_account",)
    assert body["tool_choice"] == {"type": "tool", "name": "get_weather"}


# --- sampling, output cap, model, choices ----------------------------------------------------------


def test_output_cap_is_max_tokens_with_anthropics_required_default() -> None:
    assert ACCESS.default_output_cap == 4096
    assert ACCESS.output_cap({"messages": USER}) is None
    assert ACCESS.output_cap({"messages": USER, "max_tokens": 2000}) == 2000
    body: Json = {"messages": USER}
    ACCESS.set_output_cap(body, 512)
    assert body["max_tokens"] == 512
    body = {"messages": USER, "max_tokens": 2000}
    ACCESS.set_output_cap(body, 512)
    assert body["max_tokens"] == 512


def test_temperature_and_the_sampling_controls_that_exclude_a_default() -> None:
    assert ACCESS.temperature({"messages": USER}) is None
    body: Json = {"messages": USER, "temperature": 0.9}
    assert ACCESS.temperature(body) == 0.9
    ACCESS.set_temperature(body, 0.5)
    assert body["temperature"] == 0.5
    assert ACCESS.sampling_chosen({"messages": USER}) is False
    assert ACCESS.sampling_chosen({"messages": USER, "top_p": 0.9}) is True
    for kind, chosen in (("enabled", True), ("adaptive", True), ("disabled", False)):
        assert ACCESS.sampling_chosen({"messages": USER, "thinking": {"type": kind}}) is chosen


def test_model_and_choices() -> None:
    body: Json = {"messages": USER, "model": "claude-whatever"}
    ACCESS.set_model(body, "claude-x")
    assert body["model"] == "claude-x"
    assert ACCESS.choices({"messages": USER, "n": 3}) == (None, "n")


# --- the system prompt and the cache marks -------------------------------------------------------


def test_prompt_goes_first_and_both_marks_are_set() -> None:
    body: Json = {"messages": USER, "tools": [WEATHER], "temperature": 1.7}
    ACCESS.add_system_prompt(body, "Agent rules.", BOTH)
    assert body["system"] == [{"type": "text", "text": "Agent rules.", "cache_control": EPHEMERAL}]
    assert body["tools"] == [{**WEATHER, "cache_control": EPHEMERAL}]


def test_a_string_system_becomes_a_block_after_the_prompt() -> None:
    body: Json = {"messages": USER, "system": "Caller."}
    ACCESS.add_system_prompt(body, "Agent rules.", PromptCache())
    assert body["system"] == [{"type": "text", "text": "Agent rules."}, {"type": "text", "text": "Caller."}]
    blocks: Json = {"messages": USER, "system": [marked("Blocks.")]}
    ACCESS.add_system_prompt(blocks, "Agent rules.", BOTH)
    assert blocks["system"] == [
        {"type": "text", "text": "Agent rules.", "cache_control": EPHEMERAL},
        marked("Blocks."),
    ]


def test_no_marks_beyond_anthropics_limit_of_four() -> None:
    full = {
        "messages": [{"role": "user", "content": [marked()] * 4}],
        "tools": [WEATHER],
        "system": "Caller.",
    }
    ACCESS.add_system_prompt(full, "Agent rules.", BOTH)
    assert full["system"] == [{"type": "text", "text": "Agent rules."}, {"type": "text", "text": "Caller."}]
    assert full["tools"] == [WEATHER]
    result = {"type": "tool_result", "tool_use_id": "t1", "content": [marked()]}
    one_left = {"messages": [{"role": "user", "content": [marked(), marked(), result]}], "tools": [WEATHER]}
    ACCESS.add_system_prompt(one_left, "Agent rules.", BOTH)
    assert one_left["system"][0]["cache_control"] == EPHEMERAL
    assert one_left["tools"] == [WEATHER]


def test_tool_mark_without_a_prompt_and_never_twice() -> None:
    body: Json = {"messages": USER, "tools": [DELETE, WEATHER]}
    ACCESS.add_system_prompt(body, None, BOTH)
    assert "system" not in body
    assert body["tools"] == [DELETE, {**WEATHER, "cache_control": EPHEMERAL}]
    already = {"messages": USER, "tools": [{**WEATHER, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}
    ACCESS.add_system_prompt(already, None, BOTH)
    assert already["tools"] == [{**WEATHER, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]


def test_without_prompt_cache_no_marks() -> None:
    body: Json = {"messages": USER, "tools": [WEATHER]}
    ACCESS.add_system_prompt(body, "Agent rules.", PromptCache())
    assert body == {
        "messages": USER,
        "tools": [WEATHER],
        "system": [{"type": "text", "text": "Agent rules."}],
    }


def test_the_callers_nested_values_are_never_changed() -> None:
    system = [{"type": "text", "text": "Caller."}]
    tools = [WEATHER]
    body: Json = {"messages": USER, "system": system, "tools": tools}
    before = copy.deepcopy(body)
    for attempt in range(2):
        copy_of = dict(body)
        ACCESS.add_system_prompt(copy_of, f"Agent {attempt}.", BOTH)
        assert copy_of["system"][0]["text"] == f"Agent {attempt}."
        assert len(copy_of["system"]) == 2
    assert body == before
    assert body["system"] is system and body["tools"] is tools
