"""The Anthropic adapter's request envelope: URL, headers, max_tokens, sampling, dropped and
refused parameters (`astra_sidecar.sidecar.protocols.anthropic.upstream_request`); every translated request
must pass the fake upstream's copy of the API's own rules (`helpers.build`).
"""

from __future__ import annotations

import dataclasses
import random
from types import MappingProxyType
from typing import Any

import orjson
import pytest

from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.base import AuthMaterial
from tests.sidecar.protocols.anthropic.helpers import (
    ADAPTER,
    AGENT,
    AUTH,
    CLUSTER,
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
)

# --- request: envelope --------------------------------------------------------------------------


def test_request_url_headers_and_envelope() -> None:
    request = ADAPTER.build_request(CLUSTER, AGENT, chat(user("Hi")), AUTH)
    assert request.url == "http://fake.invalid/v1/messages"
    assert request.method == "POST"
    assert request.stream is False
    assert dict(request.headers) == {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "x-api-key": "sk-ant-test",
    }
    assert orjson.loads(request.body) == {
        "model": "claude-test",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [text("Hi")]}],
    }


def test_cluster_headers_are_added_but_never_replace_the_key() -> None:
    cluster = dataclasses.replace(
        CLUSTER,
        base_url="http://fake.invalid/",
        headers=MappingProxyType(
            {"Anthropic-Beta": "b1", "X-Api-Key": "sneaky", "anthropic-version": "2024-01-01"}
        ),
    )
    request = ADAPTER.build_request(cluster, AGENT, chat(user("Hi")), AUTH)
    assert request.url == "http://fake.invalid/v1/messages"
    assert dict(request.headers) == {
        "content-type": "application/json",
        "anthropic-version": "2024-01-01",
        "anthropic-beta": "b1",
        "x-api-key": "sk-ant-test",
    }


def test_bearer_auth_style_and_no_auth() -> None:
    bearer = dataclasses.replace(CLUSTER, auth="bearer")
    headers = ADAPTER.build_request(bearer, AGENT, chat(user("Hi")), AUTH).headers
    assert headers["authorization"] == "Bearer sk-ant-test"
    assert "x-api-key" not in headers
    keyless = ADAPTER.build_request(CLUSTER, AGENT, chat(user("Hi")), AuthMaterial()).headers
    assert "x-api-key" not in keyless and "authorization" not in keyless


def test_stream_flag() -> None:
    request = ADAPTER.build_request(CLUSTER, AGENT, chat(user("Hi"), stream=True), AUTH)
    assert request.stream is True
    assert orjson.loads(request.body)["stream"] is True


@pytest.mark.parametrize(
    ("extra", "agent_cap", "expected"),
    [
        ({"max_completion_tokens": 100, "max_tokens": 50}, 999, 100),
        ({"max_tokens": 50}, 999, 50),
        ({}, 777, 777),
        ({}, None, 4096),
    ],
)
def test_max_tokens(extra: Json, agent_cap: int | None, expected: int) -> None:
    agent = dataclasses.replace(AGENT, max_output_tokens=agent_cap)
    assert build(chat(user("Hi"), **extra), agent=agent)["max_tokens"] == expected


@pytest.mark.parametrize(
    ("stop", "expected"),
    [("END", ["END"]), (["a", "b"], ["a", "b"]), (["", "x"], ["x"]), (None, None)],
)
def test_stop_sequences(stop: Any, expected: list[str] | None) -> None:
    body = build(chat(user("Hi"), stop=stop))
    assert body.get("stop_sequences") == expected
    assert "stop" not in body


def test_sampling_user_and_dropped_params() -> None:
    body = build(
        chat(
            user("Hi"),
            temperature=0.3,
            top_p=0.9,
            top_k=40,
            user="u-1",
            n=1,
            seed=7,
            frequency_penalty=0.5,
            presence_penalty=0.1,
            logprobs=True,
            top_logprobs=2,
            logit_bias={"1": 2},
            service_tier="auto",
            store=True,
            metadata={"k": "v"},
            stream_options={"include_usage": True},
            response_format={"type": "text"},
            parallel_tool_calls=False,
        )
    )
    assert body == {
        "model": "claude-test",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [text("Hi")]}],
        "temperature": 0.3,
        "top_k": 40,
        "metadata": {"user_id": "u-1"},
    }


def test_top_p_alone_is_kept_and_safety_identifier_wins_over_user() -> None:
    body = build(chat(user("Hi"), top_p=0.5, user="old", safety_identifier="new"))
    assert body["top_p"] == 0.5
    assert "temperature" not in body
    assert body["metadata"] == {"user_id": "new"}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools"),
        (
            {"tools": [WEATHER_TOOL], "tool_choice": {"type": "custom", "custom": {"name": "x"}}},
            "tool_choice",
        ),
    ],
)
def test_unsupported_parameters_are_400(extra: Json, param: str) -> None:
    with pytest.raises(ClientError) as info:
        build(chat(user("Hi"), **extra))
    assert info.value.failure.status == 400
    assert info.value.failure.param == param
    assert info.value.failure.retryable is False


# --- random conversations -----------------------------------------------------------------------


def test_random_conversations_translate_to_valid_requests() -> None:
    rng = random.Random(4)
    for _ in range(200):
        messages: list[Json] = []
        pending: list[str] = []
        for n in range(rng.randint(1, 8)):
            kind = rng.choice(["system", "user", "assistant", "tools"])
            if pending:
                messages += [tool_result(i, rng.choice(["ok", ""])) for i in pending]
                pending = []
            elif kind == "system":
                messages.append({"role": rng.choice(["system", "developer"]), "content": f"s{n}"})
            elif kind == "user":
                messages.append(user(rng.choice([f"u{n}", "", [text(f"u{n}")]])))
            elif kind == "assistant":
                messages.append(assistant(rng.choice([f"a{n}", "", None, " "])))
            else:
                pending = [f"toolu_{n}_{k}" for k in range(rng.randint(1, 3))]
                messages.append(
                    assistant(rng.choice([None, "calling"]), [call(i, "get_time", "{}") for i in pending])
                )
        messages += [tool_result(i, "late") for i in pending]
        build(chat(*messages, tools=[TIME_TOOL]))
