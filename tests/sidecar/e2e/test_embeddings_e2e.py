"""Embeddings end to end: the official `openai` and `google-genai` SDKs → the sidecar → fake
OpenAI, Gemini and Bedrock upstreams on real ports, each answering as its provider documents."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestServer
from google import genai
from google.genai import types

from tests.fakes import bedrock_upstream as fake_bedrock
from tests.fakes.bedrock_upstream import BedrockUpstream, Error
from tests.fakes.gemini_upstream import FakeGemini, fake_values
from tests.fakes.openai_upstream import FakeOpenAI, Step, error, fake_embedding
from tests.sidecar.harness import Sidecar, compile_yaml, running_sidecar

GENAI_WARNINGS = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)
GEMINI_KEY = "g-env-key"
ENV = {
    "OPENAI_API_KEY": "sk-openai-env",
    "GEMINI_API_KEY": GEMINI_KEY,
    "MISTRAL_API_KEY": "mistral-env",
    "AWS_ACCESS_KEY_ID": fake_bedrock.TEST_ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": fake_bedrock.TEST_SECRET_KEY,
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _yaml(openai_url: str, gemini_url: str, bedrock_url: str) -> str:
    return f"""
    version: 1
    agents:
      vectors:
        model:
          kind: embedding
          provider: openai
          modelId: text-embedding-3-small
          endpoint: {openai_url}
          fallback: {{provider: gemini, modelId: gemini-embedding-001, endpoint: "{gemini_url}"}}
        retry: {{maxRetries: 1, baseDelayMs: 1, jitter: 0}}
      gemini-vectors:
        model: {{kind: embedding, provider: gemini, modelId: gemini-embedding-001, endpoint: "{gemini_url}",
                 maxContextTokens: 10}}
      titan:
        model: {{kind: embedding, provider: bedrock, modelId: "amazon.titan-embed-text-v2:0",
                 endpoint: "{bedrock_url}", region: us-east-1}}
      cohere:
        model: {{kind: embedding, provider: bedrock, modelId: cohere.embed-english-v3,
                 endpoint: "{bedrock_url}", region: us-east-1}}
      mistral-vectors:
        model: {{kind: embedding, provider: mistral, modelId: mistral-embed, endpoint: "{openai_url}"}}
      chat:
        model: {{provider: openai, modelId: gpt-4o-mini, endpoint: "{openai_url}"}}
    """


@dataclass
class World:
    openai: FakeOpenAI
    gemini: FakeGemini
    bedrock: BedrockUpstream
    sidecar: Sidecar


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    upstream = await FakeOpenAI(Step(kind="embeddings")).start()
    gemini = FakeGemini(api_key=GEMINI_KEY)
    gemini_server = TestServer(gemini.app())
    bedrock = BedrockUpstream()
    bedrock_server = TestServer(bedrock.app)
    await gemini_server.start_server()
    await bedrock_server.start_server()
    urls = [str(s.make_url("")).rstrip("/") for s in (gemini_server, bedrock_server)]
    table = compile_yaml(tmp_path, _yaml(upstream.url, *urls))
    try:
        async with running_sidecar(table, env=ENV) as sidecar:
            yield World(upstream, gemini, bedrock, sidecar)
    finally:
        await upstream.close()
        await gemini_server.close()
        await bedrock_server.close()


# --- the openai SDK ----------------------------------------------------------------------------


async def test_float_embeddings_pass_through_from_an_openai_cluster(world: World) -> None:
    raw = await world.sidecar.client().embeddings.with_raw_response.create(
        model="vectors", input=["a cat", "a dog sleeps"], encoding_format="float", dimensions=4
    )
    answer = raw.parse()
    assert [item.embedding for item in answer.data] == [
        fake_embedding("a cat", 4),
        fake_embedding("a dog sleeps", 4),
    ]
    assert [item.index for item in answer.data] == [0, 1]
    assert (answer.usage.prompt_tokens, answer.usage.total_tokens) == (5, 5)
    assert (raw.headers["x-astra-provider"], raw.headers["x-astra-attempts"]) == ("openai", "1")
    sent = world.openai.received[0]
    assert sent.path == "/v1/embeddings"
    assert sent.body == {
        "model": "text-embedding-3-small", "input": ["a cat", "a dog sleeps"], "encoding_format": "float",
        "dimensions": 4,
    }  # fmt: skip
    assert sent.headers["Authorization"] == "Bearer sk-openai-env"


async def test_the_sdk_default_base64_round_trips(world: World) -> None:
    # Without encoding_format the SDK asks for base64 and decodes it itself.
    answer = await world.sidecar.client().embeddings.create(
        model="vectors", input="hello there", dimensions=3
    )
    assert answer.data[0].embedding == fake_embedding("hello there", 3)
    assert world.openai.received[0].body["encoding_format"] == "base64"


async def test_token_arrays_go_to_an_openai_cluster(world: World) -> None:
    answer = await world.sidecar.client().embeddings.create(
        model="vectors", input=[[1, 2, 3]], encoding_format="float", dimensions=2
    )
    assert answer.data[0].embedding == fake_embedding("1 2 3", 2)
    assert world.openai.received[0].body["input"] == [[1, 2, 3]]


async def test_fallback_to_gemini_after_the_openai_retries(world: World) -> None:
    world.openai.script[:] = [error(503, "overloaded")]
    raw = await world.sidecar.client().embeddings.with_raw_response.create(
        model="vectors", input=["one", "three"], dimensions=2
    )
    answer = raw.parse()
    assert [item.embedding for item in answer.data] == [fake_values("one", 2), fake_values("three", 2)]
    assert (raw.headers["x-astra-provider"], raw.headers["x-astra-attempts"]) == ("gemini", "3")
    assert len(world.openai.received) == 2
    [sent] = world.gemini.requests
    assert sent.method == "batchEmbedContents" and sent.model == "gemini-embedding-001"
    assert sent.headers["x-goog-api-key"] == GEMINI_KEY
    assert sent.body == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": t}]},
                "outputDimensionality": 2,
            }
            for t in ("one", "three")
        ]
    }
    assert answer.usage.prompt_tokens == 3  # the sidecar's estimate: ceil(3 / 4) + ceil(5 / 4)
    labels = {"agent": "vectors", "provider": "gemini"}
    assert world.sidecar.metric("astra_fallbacks_total", labels) == 1


async def test_token_arrays_leave_out_a_fallback_that_cannot_take_them(world: World) -> None:
    world.openai.script[:] = [error(503, "overloaded")]
    with pytest.raises(openai.InternalServerError) as caught:
        await world.sidecar.client().embeddings.create(model="vectors", input=[[1, 2]])
    assert caught.value.response.headers["x-astra-attempts"] == "2"
    assert len(world.openai.received) == 2
    assert world.gemini.requests == []


async def test_an_open_breaker_sends_the_next_request_straight_to_the_fallback(world: World) -> None:
    world.openai.script[:] = [error(500, "down")]
    client = world.sidecar.client()
    attempts = []
    for _ in range(4):
        raw = await client.embeddings.with_raw_response.create(model="vectors", input="x", dimensions=1)
        attempts.append((raw.headers["x-astra-attempts"], raw.headers["x-astra-provider"]))
    # Two failures per request; the fifth opens the breaker (threshold 5) and stops the retries.
    assert attempts == [("3", "gemini"), ("3", "gemini"), ("2", "gemini"), ("1", "gemini")]
    assert len(world.openai.received) == 5
    labels = {"agent": "vectors", "provider": "openai", "outcome": "breaker_open"}
    assert world.sidecar.metric("astra_upstream_attempts_total", labels) == 1


async def test_token_arrays_are_refused_when_a_plan_entry_cannot_take_them(world: World) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await world.sidecar.client().embeddings.create(model="gemini-vectors", input=[1, 2, 3])
    assert caught.value.status_code == 400
    assert caught.value.body == {
        "message": "token arrays as input are not accepted by gemini, nor by this agent's fallbacks",
        "type": "invalid_request_error", "param": "input", "code": "invalid_value",
    }  # fmt: skip
    assert world.gemini.requests == []


async def test_mistral_gets_its_own_field_names(world: World) -> None:
    await world.sidecar.client().embeddings.create(
        model="mistral-vectors", input="bonjour", dimensions=8, user="u-1", encoding_format="float"
    )
    sent = world.openai.received[0].body
    assert sent == {
        "model": "mistral-embed",
        "input": "bonjour",
        "output_dimension": 8,
        "encoding_format": "float",
    }


async def test_titan_one_call_per_input_signed(world: World) -> None:
    raw = await world.sidecar.client().embeddings.with_raw_response.create(
        model="titan", input=["first text", "second one here"], dimensions=256, encoding_format="float"
    )
    answer = raw.parse()
    assert [len(item.embedding) for item in answer.data] == [256, 256]
    assert answer.data[1].embedding == fake_bedrock.fake_vector("second one here", 256)
    assert answer.usage.prompt_tokens == 5
    assert raw.headers["x-astra-attempts"] == "1"
    assert [r.json for r in world.bedrock.requests] == [
        {"inputText": "first text", "dimensions": 256},
        {"inputText": "second one here", "dimensions": 256},
    ]
    assert all(r.operation == "invoke" and r.canonical_request for r in world.bedrock.requests)
    assert world.bedrock.rejected == []


async def test_cohere_one_call_for_the_texts_and_base64(world: World) -> None:
    answer = await world.sidecar.client().embeddings.create(model="cohere", input=["alpha beta", "gamma"])
    assert answer.data[0].embedding == fake_bedrock.fake_vector("alpha beta", 1024)
    assert answer.usage.prompt_tokens == 3  # the X-Amzn-Bedrock-Input-Token-Count header
    [sent] = world.bedrock.requests
    assert sent.json == {"texts": ["alpha beta", "gamma"], "input_type": "search_document"}


async def test_cohere_refuses_dimensions_before_sending(world: World) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await world.sidecar.client().embeddings.create(model="cohere", input="x", dimensions=256)
    assert caught.value.body["param"] == "dimensions"  # type: ignore[index]
    assert world.bedrock.requests == []


async def test_a_bedrock_validation_error_is_the_callers_and_not_retried(world: World) -> None:
    world.bedrock.script(Error(400, "ValidationException", "Malformed input request"))
    with pytest.raises(openai.BadRequestError) as caught:
        await world.sidecar.client().embeddings.with_raw_response.create(model="titan", input="x")
    assert caught.value.response.headers["x-astra-attempts"] == "1"
    assert len(world.bedrock.requests) == 1


# --- kinds ---------------------------------------------------------------------------------------


async def test_chat_on_an_embedding_agent_is_a_400_naming_its_kind(world: World) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await world.sidecar.client().chat.completions.create(
            model="vectors", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.body == {
        "message": "agent 'vectors' is an embedding agent: it serves embeddings (POST /v1/embeddings), not chat",
        "type": "invalid_request_error", "param": "model", "code": "wrong_agent_kind",
    }  # fmt: skip
    assert world.openai.received == []


async def test_embeddings_on_a_chat_agent_is_a_400_naming_its_kind(world: World) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await world.sidecar.client().embeddings.create(model="chat", input="hi")
    assert caught.value.body == {
        "message": "agent 'chat' is a chat agent: it does not serve embeddings",
        "type": "invalid_request_error", "param": "model", "code": "wrong_agent_kind",
    }  # fmt: skip
    assert world.openai.received == []


async def test_an_unknown_agent_is_a_404(world: World) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await world.sidecar.client().embeddings.create(model="nope", input="hi")
    assert caught.value.body["code"] == "model_not_found"  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "param"),
    [({"model": "vectors"}, "input"), ({"model": "vectors", "input": []}, "input"),
     ({"model": "vectors", "input": ""}, "input"), ({"model": "vectors", "input": "x", "dimensions": 0}, "dimensions"),
     ({"model": "vectors", "input": "x", "encoding_format": "int8"}, "encoding_format")],
)  # fmt: skip
async def test_bad_bodies_are_400_naming_the_field(world: World, body: dict[str, Any], param: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(world.sidecar.url + "/v1/embeddings", json=body) as answer,
    ):
        assert answer.status == 400
        assert (await answer.json())["error"]["param"] == param
    assert world.openai.received == []


async def test_the_provider_prefix_route_takes_the_agent_from_the_path(world: World) -> None:
    client = world.sidecar.client(base_path="/v1/openai/vectors/v1")
    answer = await client.embeddings.create(
        model="anything", input="hi", encoding_format="float", dimensions=2
    )
    assert answer.data[0].embedding == fake_embedding("hi", 2)


async def test_one_access_line_with_tokens(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="astra.access")
    await world.sidecar.client().embeddings.create(model="titan", input="a b c", encoding_format="float")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "astra.access"]
    assert [
        (line["route"], line["agent"], line["provider"], line["status"], line["prompt_tokens"])
        for line in lines
    ] == [("openai-embeddings", "titan", "bedrock", 200, 3)]


# --- google-genai ------------------------------------------------------------------------------


@GENAI_WARNINGS
async def test_google_genai_embed_content_on_an_openai_agent(world: World) -> None:
    options = types.HttpOptions(base_url=f"{world.sidecar.url}/v1/gemini/vectors", timeout=20_000)
    client = genai.Client(api_key="client-key", http_options=options)
    try:
        answer = await client.aio.models.embed_content(
            model="text-embedding-3-small", contents=["red", "green"],
            config=types.EmbedContentConfig(output_dimensionality=3),
        )  # fmt: skip
    finally:
        await client.aio.aclose()
    assert answer.embeddings is not None
    assert [e.values for e in answer.embeddings] == [fake_embedding("red", 3), fake_embedding("green", 3)]
    sent = world.openai.received[0].body
    assert sent == {
        "model": "text-embedding-3-small",
        "input": ["red", "green"],
        "encoding_format": "float",
        "dimensions": 3,
    }


@GENAI_WARNINGS
async def test_google_genai_embed_content_on_a_gemini_agent(world: World) -> None:
    options = types.HttpOptions(base_url=f"{world.sidecar.url}/v1/gemini/gemini-vectors", timeout=20_000)
    client = genai.Client(api_key="client-key", http_options=options)
    try:
        answer = await client.aio.models.embed_content(
            model="gemini-embedding-001", contents="why is the sky blue",
            config=types.EmbedContentConfig(task_type="RETRIEVAL_QUERY", output_dimensionality=4),
        )  # fmt: skip
    finally:
        await client.aio.aclose()
    assert answer.embeddings is not None
    assert [e.values for e in answer.embeddings] == [fake_values("why is the sky blue", 4)]
    [sent] = world.gemini.requests
    assert sent.body["requests"][0]["taskType"] == "RETRIEVAL_QUERY"
    assert sent.headers["x-goog-api-key"] == GEMINI_KEY


async def test_gemini_embed_content_rest_shape_and_errors(world: World) -> None:
    url = world.sidecar.url + "/v1/gemini/titan/v1beta/models/x:embedContent"
    body = {"content": {"parts": [{"text": "one two"}]}, "outputDimensionality": 256}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=body) as answer:
            assert answer.status == 200
            assert await answer.json() == {"embedding": {"values": fake_bedrock.fake_vector("one two", 256)}}
        bad = {"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": ""}}]}}
        async with http.post(url, json=bad) as answer:
            assert answer.status == 400
            error_body = await answer.json()
        chat_url = world.sidecar.url + "/v1/gemini/chat/v1beta/models/x:embedContent"
        async with http.post(chat_url, json=body) as answer:
            assert answer.status == 400
            kind_error = await answer.json()
    assert error_body["error"]["status"] == "INVALID_ARGUMENT"
    assert error_body["error"]["message"] == "content.parts[0]: only text parts can be embedded here"
    assert kind_error["error"]["message"] == "agent 'chat' is a chat agent: it does not serve embeddings"


# --- models --------------------------------------------------------------------------------------


async def test_models_list_says_what_each_agent_serves(world: World) -> None:
    page = await world.sidecar.client().models.list()
    served = {model.id: (model.object, model.owned_by, model.model_extra) for model in page.data}
    assert served["vectors"] == ("model", "astra:openai", {"capabilities": ["embeddings"]})
    assert served["chat"] == ("model", "astra:openai", {"capabilities": ["chat", "responses"]})
    assert served["titan"][1] == "astra:bedrock"
    assert len(served) == 6


async def test_models_retrieve_and_unknown_id(world: World) -> None:
    client = world.sidecar.client()
    model = await client.models.retrieve("cohere")
    assert (model.id, model.owned_by, model.model_extra) == (
        "cohere",
        "astra:bedrock",
        {"capabilities": ["embeddings"]},
    )
    prefixed = await world.sidecar.client(base_path="/v1/openai/chat/v1").models.retrieve("chat")
    assert prefixed.id == "chat"
    with pytest.raises(openai.NotFoundError) as caught:
        await client.models.retrieve("gpt-9")
    assert caught.value.body == {
        "message": "The model 'gpt-9' does not exist: it names no agent of this sidecar",
        "type": "invalid_request_error", "param": "model", "code": "model_not_found",
    }  # fmt: skip


async def test_gemini_and_anthropic_model_lists_know_the_kind(world: World) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(world.sidecar.url + "/v1/gemini/titan/v1beta/models/titan") as answer:
            gemini_model = await answer.json()
        async with http.get(world.sidecar.url + "/v1/anthropic/titan/v1/models") as answer:
            anthropic_list = await answer.json()
        async with http.get(world.sidecar.url + "/v1/anthropic/chat/v1/models") as answer:
            anthropic_chat = await answer.json()
    assert gemini_model["supportedGenerationMethods"] == ["embedContent", "batchEmbedContents"]
    assert anthropic_list["data"] == []
    assert [m["id"] for m in anthropic_chat["data"]] == ["chat"]


async def test_chat_routes_of_other_apis_refuse_an_embedding_agent_in_their_shape(world: World) -> None:
    message = "agent 'titan' is an embedding agent: it serves embeddings (POST /v1/embeddings), not chat"
    gemini_body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    anthropic_body = {"model": "x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            world.sidecar.url + "/v1/gemini/titan/v1beta/models/x:generateContent", json=gemini_body
        ) as answer:
            gemini = (answer.status, await answer.json())
        async with http.post(
            world.sidecar.url + "/v1/anthropic/titan/v1/messages", json=anthropic_body
        ) as answer:
            anthropic = (answer.status, await answer.json())
        async with http.post(
            world.sidecar.url + "/v1/responses", json={"model": "titan", "input": "hi"}
        ) as answer:
            responses = (answer.status, await answer.json())
    assert (gemini[0], gemini[1]["error"]["status"], gemini[1]["error"]["message"]) == (
        400,
        "INVALID_ARGUMENT",
        message,
    )
    assert anthropic == (
        400,
        {"type": "error", "error": {"type": "invalid_request_error", "message": message}},
    )
    assert (responses[0], responses[1]["error"]["code"]) == (400, "wrong_agent_kind")
    assert world.bedrock.requests == []


async def test_each_input_must_fit_the_context_window(world: World) -> None:
    client = world.sidecar.client()
    await client.embeddings.create(model="gemini-vectors", input=["x" * 20, "y" * 20])  # 5 + 4 tokens each
    with pytest.raises(openai.BadRequestError) as caught:
        await client.embeddings.create(model="gemini-vectors", input=["short", "z" * 40])
    assert caught.value.body["code"] == "context_length_exceeded"  # type: ignore[index]
    assert caught.value.body["param"] == "input"  # type: ignore[index]
    assert len(world.gemini.requests) == 1
