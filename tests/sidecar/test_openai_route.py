"""The OpenAI-compatible route: the demo agent, policy on every request, provider quirks, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Step, completion, text_chunks
from tests.sidecar.harness import compile_yaml, running_sidecar

DEMO = """
    version: 1
    agents:
      demo:
        model: {provider: mock, modelId: astra-demo, mock: {reply: "Hello from the demo agent."}}
    """


async def test_demo_agent_answers_plain_and_streamed_with_no_keys(tmp_path: Path) -> None:
    async with running_sidecar(compile_yaml(tmp_path, DEMO)) as sidecar:
        client = sidecar.client()
        raw = await client.chat.completions.with_raw_response.create(
            model="demo", messages=[{"role": "user", "content": "hi"}]
        )
        answer = raw.parse()
        stream = await client.chat.completions.create(
            model="demo",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
    assert answer.choices[0].message.content == "Hello from the demo agent."
    assert answer.usage is not None and answer.usage.completion_tokens == 5
    assert raw.headers["x-astra-provider"] == "mock" and raw.headers["x-astra-attempts"] == "1"
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the demo agent."
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-2].choices[0].finish_reason == "stop"


async def test_models_lists_agents_in_openai_format(tmp_path: Path) -> None:
    async with running_sidecar(compile_yaml(tmp_path, DEMO)) as sidecar:
        models = await sidecar.client().models.list()
    assert [(m.id, m.owned_by) for m in models.data] == [("demo", "astra:mock")]


async def test_unknown_agent_is_404_model_not_found(tmp_path: Path) -> None:
    async with running_sidecar(compile_yaml(tmp_path, DEMO)) as sidecar:
        with pytest.raises(openai.NotFoundError) as caught:
            await sidecar.client().chat.completions.create(
                model="nope", messages=[{"role": "user", "content": "x"}]
            )
    assert caught.value.body["code"] == "model_not_found"  # type: ignore[index]
    assert caught.value.body["param"] == "model"  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "status", "code_or_param"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"", 400, "invalid_json"),
        (b"[1, 2]", 400, None),
        (b'{"model": "demo"}', 400, "messages"),
        (b'{"model": "demo", "messages": []}', 400, "messages"),
        (b'{"model": "demo", "messages": ["hi"]}', 400, "messages[0]"),
        (
            b'{"model": "demo", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
            400,
            "stream",
        ),
        (
            b'{"model": "demo", "messages": [{"role": "user", "content": "x"}], "max_tokens": "9"}',
            400,
            "max_tokens",
        ),
        (b'{"model": 5, "messages": [{"role": "user", "content": "x"}]}', 400, "model"),
    ],
)
async def test_bad_input_gets_a_clear_openai_error(
    tmp_path: Path, body: bytes, status: int, code_or_param: str | None
) -> None:
    async with (
        running_sidecar(compile_yaml(tmp_path, DEMO)) as sidecar,
        aiohttp.ClientSession() as http,
        http.post(
            sidecar.url + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
        ) as response,
    ):
        payload = await response.json()
    assert response.status == status
    error = payload["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    if code_or_param is not None:
        assert code_or_param in (error["code"], error["param"])
    assert "Traceback" not in json.dumps(payload)


async def test_oversized_body_is_413_in_openai_shape(tmp_path: Path) -> None:
    yaml = DEMO.replace("version: 1", "version: 1\n    settings: {maxBodyBytes: 1024}")
    async with running_sidecar(compile_yaml(tmp_path, yaml)) as sidecar, aiohttp.ClientSession() as http:
        body = {"model": "demo", "messages": [{"role": "user", "content": "x" * 5000}]}
        async with http.post(sidecar.url + "/v1/chat/completions", json=body) as response:
            payload = await response.json()
    assert response.status == 413
    assert payload["error"]["code"] == "request_too_large"


async def test_unknown_route_and_method_answer_in_json(tmp_path: Path) -> None:
    async with running_sidecar(compile_yaml(tmp_path, DEMO)) as sidecar, aiohttp.ClientSession() as http:
        async with http.get(sidecar.url + "/v1/nothing") as missing:
            assert missing.status == 404
            assert (await missing.json())["error"]["type"] == "not_found_error"
        async with http.get(sidecar.url + "/v1/chat/completions") as wrong:
            assert wrong.status == 405
            assert "error" in await wrong.json()


POLICY = """
    version: 1
    agents:
      - id: support
        displayName: Support bot
        tier: gold
        systemPrompt: "You are {{ agent.displayName }} on {{ model.modelId }} for {{ vars.company }}."
        promptVars: {company: Acme}
        tools: {allow: [lookup_order]}
        model:
          provider: openai
          modelId: gpt-4o-mini
          endpoint: URL
          temperature: 0.3
          maxOutputTokens: 256
    """


def _tool(name: str) -> dict[str, object]:
    return {
        "type": "function",
        "function": {"name": name, "parameters": {"type": "object", "properties": {}}},
    }


async def test_policy_applied_to_every_request(tmp_path: Path) -> None:
    upstream = await FakeOpenAI(Step(body=completion())).start()
    try:
        table = compile_yaml(tmp_path, POLICY.replace("URL", upstream.url))
        async with running_sidecar(table, env={"OPENAI_API_KEY": "sk-live"}) as sidecar:
            raw = await sidecar.client(
                api_key="sk-client-must-not-leak"
            ).chat.completions.with_raw_response.create(
                model="support",
                messages=[{"role": "system", "content": "client system"}, {"role": "user", "content": "hi"}],
                max_tokens=4000,
                tools=[_tool("lookup_order"), _tool("refund"), _tool("delete_account")],
                extra_headers={"X-Forwarded-Host": "evil.example", "Connection": "keep-alive, x-secret"},
            )
    finally:
        await upstream.close()
    sent = upstream.received[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.body["model"] == "gpt-4o-mini"
    assert sent.body["messages"][0] == {
        "role": "system",
        "content": "You are Support bot on gpt-4o-mini for Acme.",
    }
    assert sent.body["messages"][1]["content"] == "client system"
    assert sent.body["temperature"] == 0.3
    assert sent.body["max_tokens"] == 256
    assert [t["function"]["name"] for t in sent.body["tools"]] == ["lookup_order"]
    assert raw.headers["x-astra-tools-removed"] == "refund,delete_account"
    assert sent.headers["Authorization"] == "Bearer sk-live"
    assert "X-Forwarded-Host" not in sent.headers and "x-secret" not in sent.headers


async def test_output_cap_is_set_when_the_client_sends_none(tmp_path: Path) -> None:
    upstream = await FakeOpenAI(Step(body=completion())).start()
    try:
        table = compile_yaml(tmp_path, POLICY.replace("URL", upstream.url))
        async with running_sidecar(table, env={"OPENAI_API_KEY": "k"}) as sidecar:
            await sidecar.client().chat.completions.create(
                model="support", messages=[{"role": "user", "content": "hi"}], temperature=0.9
            )
    finally:
        await upstream.close()
    assert upstream.received[0].body["max_completion_tokens"] == 256
    assert upstream.received[0].body["temperature"] == 0.9


async def test_naming_a_removed_tool_in_tool_choice_is_a_400(tmp_path: Path) -> None:
    upstream = await FakeOpenAI().start()
    try:
        table = compile_yaml(tmp_path, POLICY.replace("URL", upstream.url))
        async with running_sidecar(table, env={"OPENAI_API_KEY": "k"}) as sidecar:
            with pytest.raises(openai.BadRequestError) as caught:
                await sidecar.client().chat.completions.create(
                    model="support",
                    messages=[{"role": "user", "content": "hi"}],
                    tools=[_tool("refund")],
                    tool_choice={"type": "function", "function": {"name": "refund"}},
                )
    finally:
        await upstream.close()
    assert caught.value.body["code"] == "tool_not_allowed"  # type: ignore[index]
    assert upstream.received == []


QUIRKS = """
    version: 1
    agents:
      mistral: {model: {provider: mistral, modelId: mistral-small, endpoint: URL}}
      groq: {model: {provider: groq, modelId: llama, endpoint: URL}}
    """


async def test_provider_quirks_are_applied_as_data(tmp_path: Path) -> None:
    upstream = await FakeOpenAI(Step("sse", chunks=text_chunks(["ok"]))).start()
    try:
        table = compile_yaml(tmp_path, QUIRKS.replace("URL", upstream.url + "/v1"))
        env = {"MISTRAL_API_KEY": "m", "GROQ_API_KEY": "g"}
        async with running_sidecar(table, env=env) as sidecar:
            client = sidecar.client()
            messages = [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": "hi", "name": "ann"},
            ]
            for agent in ("mistral", "groq"):
                stream = await client.chat.completions.create(
                    model=agent,
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                    max_completion_tokens=50,
                    seed=3,
                    logit_bias={"1": 1},
                )
                _ = [c async for c in stream]
    finally:
        await upstream.close()
    mistral, groq = (r.body for r in upstream.received)
    assert "stream_options" not in mistral and "logit_bias" not in mistral
    assert mistral["max_tokens"] == 50 and "max_completion_tokens" not in mistral
    assert mistral["random_seed"] == 3 and "seed" not in mistral
    assert mistral["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert (
        "logit_bias" not in groq and groq["seed"] == 3 and groq["stream_options"] == {"include_usage": True}
    )
    assert groq["messages"][1] == {"role": "user", "content": "hi"}
    assert upstream.received[0].headers["Authorization"] == "Bearer m"
    assert upstream.received[1].headers["Authorization"] == "Bearer g"


async def test_mistral_finish_reason_is_normalised(tmp_path: Path) -> None:
    body = completion()
    body["choices"][0]["finish_reason"] = "model_length"
    upstream = await FakeOpenAI(Step(body=body)).start()
    try:
        table = compile_yaml(tmp_path, QUIRKS.replace("URL", upstream.url))
        async with running_sidecar(table, env={"MISTRAL_API_KEY": "m"}) as sidecar:
            answer = await sidecar.client().chat.completions.create(
                model="mistral", messages=[{"role": "user", "content": "hi"}]
            )
    finally:
        await upstream.close()
    assert answer.choices[0].finish_reason == "length"


async def test_missing_provider_key_is_a_clear_error_that_never_names_a_value(tmp_path: Path) -> None:
    upstream = await FakeOpenAI().start()
    try:
        table = compile_yaml(tmp_path, POLICY.replace("URL", upstream.url))
        async with running_sidecar(table, env={}) as sidecar:
            with pytest.raises(openai.InternalServerError) as caught:
                await sidecar.client().chat.completions.create(
                    model="support", messages=[{"role": "user", "content": "hi"}]
                )
    finally:
        await upstream.close()
    assert caught.value.body["code"] == "credentials_missing"  # type: ignore[index]
    assert "OPENAI_API_KEY" in caught.value.body["message"]  # type: ignore[index]
    assert upstream.received == []


@pytest.mark.parametrize("prefix", ["/v1/openai/demo", "/v1/openai/demo/v1", "/v1/cerebras/demo", "/v1/vllm/demo/v1",
                                    "/v1/ollama/demo"])
async def test_provider_style_base_urls_take_the_agent_from_the_path(tmp_path: Path, prefix: str) -> None:
    async with running_sidecar(compile_yaml(tmp_path, DEMO)) as sidecar:
        client = sidecar.client("x", base_path=prefix)
        answer = await client.chat.completions.create(
            model="whatever-the-sdk-default-is", messages=[{"role": "user", "content": "hi"}]
        )
        models = await client.models.list()
    assert answer.choices[0].message.content == "Hello from the demo agent."
    assert [m.id for m in models.data] == ["demo"]


async def test_provider_style_base_url_with_unknown_agent_is_404(tmp_path: Path) -> None:
    async with running_sidecar(compile_yaml(tmp_path, DEMO)) as sidecar:
        client = sidecar.client("x", base_path="/v1/openai/ghost")
        with pytest.raises(openai.NotFoundError) as caught:
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["code"] == "model_not_found"  # type: ignore[index]


async def test_guard_errors_come_in_the_callers_api_shape(tmp_path: Path) -> None:
    async with running_sidecar(compile_yaml(tmp_path, DEMO)) as sidecar, aiohttp.ClientSession() as http:
        async with http.get(sidecar.url + "/v1/anthropic/demo/v1/nothing-here") as anthropic_style:
            anthropic_body = await anthropic_style.json()
        async with http.get(sidecar.url + "/v1/gemini/demo/v1beta/nothing/here") as gemini_style:
            gemini_body = await gemini_style.json()
    assert anthropic_style.status == 404 and anthropic_body["type"] == "error"
    assert anthropic_body["error"]["type"] == "not_found_error"
    assert gemini_style.status == 404 and gemini_body["error"]["status"] == "NOT_FOUND"


async def test_no_credentials_anywhere_names_every_provider_and_counts_no_attempt(tmp_path: Path) -> None:
    yaml = """
    version: 1
    agents:
      chat:
        model:
          provider: openai
          modelId: gpt-a
          fallback:
            - {provider: groq, modelId: llama-b}
    """
    async with running_sidecar(compile_yaml(tmp_path, yaml), env={}) as sidecar:
        with pytest.raises(openai.InternalServerError) as caught:
            await sidecar.client().chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": "hi"}]
            )
    body: Any = caught.value.body
    assert body["code"] == "credentials_missing"
    assert "OPENAI_API_KEY" in body["message"] and "GROQ_API_KEY" in body["message"]
    assert caught.value.response.headers["x-astra-attempts"] == "0"
