"""`ACCESS`, the agent policy's accessors for Gemini bodies, pinned to what the native path did
before the policy was written once (`astra_sidecar.sidecar.policy.agent`)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from astra_sidecar.compiler.table import PromptCache, ToolPolicy
from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.gemini.ingress_request import parse_request
from astra_sidecar.sidecar.protocols.gemini.policy_access import ACCESS

Json = dict[str, Any]

WEATHER = {"name": "get_weather", "description": "Current weather"}
DELETE = {"name": "delete_account"}
HI = [{"role": "user", "parts": [{"text": "hi"}]}]
ALLOW_WEATHER = ToolPolicy(allow=("get_weather",))


def refuses(policy: ToolPolicy = ALLOW_WEATHER) -> Any:
    return lambda name: not policy.permits(name)


def body(**fields: Any) -> Json:
    return parse_request({"contents": HI, **fields})


# --- tools ----------------------------------------------------------------------------------------


def test_refused_functions_and_built_in_tools_are_removed_and_the_config_follows() -> None:
    request = body(
        tools=[{"googleSearch": {}}, {"functionDeclarations": [WEATHER, DELETE]}],
        toolConfig={
            "functionCallingConfig": {
                "mode": "ANY",
                "allowedFunctionNames": ["get_weather", "delete_account"],
            }
        },
    )
    assert ACCESS.remove_tools(request, refuses()) == ("googleSearch", "delete_account")
    assert request["tools"] == [{"functionDeclarations": [WEATHER]}]
    assert request["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }


def test_forcing_only_removed_functions_is_a_400() -> None:
    request = body(
        tools=[{"functionDeclarations": [DELETE]}],
        toolConfig={"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["delete_account"]}},
    )
    with pytest.raises(ClientError) as caught:
        ACCESS.remove_tools(request, refuses())
    failure = caught.value.failure
    assert (failure.status, failure.code) == (400, "tool_not_allowed")
    assert failure.message == "tool 'delete_account' is not allowed for this agent"
    assert failure.param == "toolConfig.functionCallingConfig.allowedFunctionNames"


def test_with_no_function_left_the_function_calling_config_goes() -> None:
    request = body(
        tools=[{"functionDeclarations": [DELETE]}, {"codeExecution": {}}],
        toolConfig={"functionCallingConfig": {"mode": "AUTO"}, "retrievalConfig": {"languageCode": "en"}},
    )
    assert ACCESS.remove_tools(request, refuses(ToolPolicy(deny=("delete_account",)))) == ("delete_account",)
    assert request["tools"] == [{"codeExecution": {}}]
    assert request["toolConfig"] == {"retrievalConfig": {"languageCode": "en"}}


def test_with_no_tool_left_tools_and_an_empty_tool_config_go() -> None:
    request = body(
        tools=[{"functionDeclarations": [DELETE]}, {"googleSearch": {}}],
        toolConfig={"functionCallingConfig": {"mode": "AUTO"}},
    )
    assert ACCESS.remove_tools(request, refuses()) == ("delete_account", "googleSearch")
    assert "tools" not in request and "toolConfig" not in request


def test_a_mixed_tool_object_keeps_what_is_allowed() -> None:
    request = body(tools=[{"functionDeclarations": [WEATHER, DELETE], "googleSearch": {}}])
    assert ACCESS.remove_tools(request, refuses()) == ("delete_account", "googleSearch")
    assert request["tools"] == [{"functionDeclarations": [WEATHER]}]


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"tools": []},
        {
            "tools": [{"functionDeclarations": [WEATHER]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
        },
    ],
)
def test_nothing_refused_changes_nothing(fields: Json) -> None:
    request = body(**fields)
    before = copy.deepcopy(request)
    assert ACCESS.remove_tools(request, refuses()) == ()
    assert request == before


def test_the_callers_objects_are_not_changed() -> None:
    original = body(
        tools=[{"functionDeclarations": [WEATHER, DELETE]}],
        toolConfig={
            "functionCallingConfig": {
                "mode": "ANY",
                "allowedFunctionNames": ["get_weather", "delete_account"],
            }
        },
        generationConfig={"temperature": 1.9, "maxOutputTokens": 900},
        systemInstruction={"parts": [{"text": "Client rules."}]},
    )
    before = copy.deepcopy(original)
    request = dict(original)
    ACCESS.remove_tools(request, refuses())
    ACCESS.set_temperature(request, 1.0)
    ACCESS.set_output_cap(request, 256)
    ACCESS.add_system_prompt(request, "Agent prompt.", PromptCache())
    assert original == before
    assert request != before


# --- generationConfig -----------------------------------------------------------------------------


def test_temperature_and_output_cap_are_read_from_generation_config() -> None:
    request = body(generationConfig={"temperature": 0.7, "maxOutputTokens": 300, "candidateCount": 2})
    assert ACCESS.temperature(request) == 0.7
    assert ACCESS.output_cap(request) == 300
    assert ACCESS.choices(request) == (2, "generationConfig.candidateCount")
    assert ACCESS.sampling_chosen(request) is False
    assert ACCESS.default_output_cap is None


def test_integer_fields_given_as_whole_floats_are_read_as_integers() -> None:
    request = body(generationConfig={"maxOutputTokens": 300.0, "candidateCount": 3.0})
    assert ACCESS.output_cap(request) == 300
    assert ACCESS.choices(request) == (3, "generationConfig.candidateCount")


@pytest.mark.parametrize("fields", [{}, {"generationConfig": {}}, {"generationConfig": None}])
def test_nothing_set_reads_as_none_and_writes_nothing(fields: Json) -> None:
    request = body(**fields)
    before = copy.deepcopy(request)
    assert ACCESS.temperature(request) is None
    assert ACCESS.output_cap(request) is None
    assert ACCESS.choices(request) == (None, "generationConfig.candidateCount")
    assert request == before


def test_setting_writes_generation_config_keeping_the_rest_in_order() -> None:
    request = body(generationConfig={"maxOutputTokens": 4000, "stopSequences": ["END"]})
    ACCESS.set_temperature(request, 0.3)
    ACCESS.set_output_cap(request, 256)
    assert list(request["generationConfig"].items()) == [
        ("maxOutputTokens", 256),
        ("stopSequences", ["END"]),
        ("temperature", 0.3),
    ]
    fresh = body()
    ACCESS.set_output_cap(fresh, 256)
    assert fresh["generationConfig"] == {"maxOutputTokens": 256}


def test_the_output_cap_only_ever_lowers_a_cap_the_caller_set() -> None:
    request = body(generationConfig={"maxOutputTokens": 100})
    ACCESS.set_output_cap(request, 256)
    assert request["generationConfig"] == {"maxOutputTokens": 100}


# --- model and system prompt ----------------------------------------------------------------------


def test_the_model_is_in_the_url_so_set_model_changes_nothing() -> None:
    request = body()
    before = copy.deepcopy(request)
    ACCESS.set_model(request, "gemini-2.5-pro")
    assert request == before


def test_the_agent_prompt_goes_first_in_the_system_instruction() -> None:
    request = body(systemInstruction={"role": "user", "parts": [{"text": "Client rules."}]})
    ACCESS.add_system_prompt(request, "You are Weather bot.", PromptCache(system_prompt=True, tools=True))
    assert request["systemInstruction"] == {
        "role": "user",
        "parts": [{"text": "You are Weather bot."}, {"text": "Client rules."}],
    }
    bare = body()
    ACCESS.add_system_prompt(bare, "Vertex agent.", PromptCache())
    assert bare["systemInstruction"] == {"parts": [{"text": "Vertex agent."}]}


@pytest.mark.parametrize("prompt", [None, ""])
def test_without_an_agent_prompt_the_system_instruction_is_left_alone(prompt: str | None) -> None:
    request = body(systemInstruction={"parts": [{"text": "Client rules."}]})
    before = copy.deepcopy(request)
    ACCESS.add_system_prompt(request, prompt, PromptCache())
    assert request == before
