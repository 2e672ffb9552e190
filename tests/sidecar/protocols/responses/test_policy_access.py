"""The agent policy's accessors on Responses bodies (`sidecar/protocols/responses/policy_access.py`)."""

from __future__ import annotations

from typing import Any

import pytest

from astra_sidecar.compiler.table import PromptCache
from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.responses.policy_access import ACCESS

NAMESPACE: Any = {"type": "namespace", "name": "ns", "description": "", "tools": [
    {"type": "function", "name": "a"}, {"type": "function", "name": "b"}]}  # fmt: skip


def test_refused_tools_go_by_their_policy_names_and_an_emptied_namespace_goes_too() -> None:
    body: dict[str, Any] = {"tools": [{"type": "function", "name": "f"}, {"type": "web_search"}, NAMESPACE]}
    removed = ACCESS.remove_tools(body, lambda name: name in ("web_search", "ns__a", "ns__b"))
    assert removed == ("web_search", "ns__a", "ns__b")
    assert body["tools"] == [{"type": "function", "name": "f"}]


def test_a_namespace_keeps_its_allowed_members() -> None:
    body: dict[str, Any] = {"tools": [NAMESPACE], "tool_choice": "auto", "parallel_tool_calls": False}
    assert ACCESS.remove_tools(body, lambda name: name == "ns__a") == ("ns__a",)
    assert body["tools"] == [{**NAMESPACE, "tools": [{"type": "function", "name": "b"}]}]
    assert body["tool_choice"] == "auto"


def test_no_tool_left_takes_the_tool_settings_along() -> None:
    body: dict[str, Any] = {
        "tools": [{"type": "function", "name": "f"}],
        "tool_choice": "required",
        "parallel_tool_calls": False,
    }
    assert ACCESS.remove_tools(body, lambda name: True) == ("f",)
    assert body == {}


def test_forcing_a_removed_tool_is_a_400() -> None:
    body: dict[str, Any] = {
        "tools": [{"type": "function", "name": "f"}],
        "tool_choice": {"type": "function", "name": "f"},
    }
    with pytest.raises(ClientError) as caught:
        ACCESS.remove_tools(body, lambda name: True)
    assert (caught.value.failure.status, caught.value.failure.code) == (400, "tool_not_allowed")
    assert caught.value.failure.param == "tool_choice"


def test_prompt_output_cap_and_model() -> None:
    body: dict[str, Any] = {"instructions": "Mine.", "max_output_tokens": 900}
    ACCESS.add_system_prompt(body, "Agent's.", PromptCache())
    ACCESS.set_output_cap(body, 500)
    ACCESS.set_model(body, "gpt-up")
    assert body == {"instructions": "Agent's.\n\nMine.", "max_output_tokens": 500, "model": "gpt-up"}
    empty: dict[str, Any] = {}
    ACCESS.add_system_prompt(empty, "Agent's.", PromptCache())
    ACCESS.set_output_cap(empty, 500)
    assert empty == {"instructions": "Agent's.", "max_output_tokens": 500}
