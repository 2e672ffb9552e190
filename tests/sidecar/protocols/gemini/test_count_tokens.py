"""`POST /v1/gemini/{agent}/{version}/models/{model}:countTokens` through google-genai
(`models.count_tokens`): natively on a Gemini agent (AI Studio and Vertex AI, the answer byte for
byte, the agent's system prompt counted), by Anthropic's count_tokens on a claude agent, by
Bedrock's CountTokens on a bedrock agent, and the sidecar's estimate elsewhere."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.anthropic_coding import counted_tokens as anthropic_counted
from tests.fakes.count_apis import bedrock_count_answer, counted_tokens
from tests.fakes.gemini_upstream import write_service_account
from tests.sidecar.count_world import GEMINI_MODEL, CountWorld, count_world
from tests.sidecar.harness import compile_yaml, running_sidecar
from tests.sidecar.protocols.gemini.helpers import (
    GENAI_WARNINGS,
    VERSIONS,
    World,
    gemini_client,
    post,
    rsa_key,
    world,
)

__all__ = ["count_world", "rsa_key", "world"]
pytestmark = GENAI_WARNINGS


async def count(url: str, agent: str, contents: Any, version: str | None = None) -> Any:
    async with gemini_client(url, agent, version=version) as client:
        return await client.aio.models.count_tokens(model="any-model", contents=contents)


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_gemini_agent_counts_natively(count_world: CountWorld, version: str | None) -> None:
    answer = await count(count_world.sidecar.url, "on-gemini", "Count these words.", version)
    [sent] = count_world.gemini.requests
    assert (sent.method, sent.path) == ("countTokens", f"/v1beta/models/{GEMINI_MODEL}:countTokens")
    request = sent.body["generateContentRequest"]
    assert request["model"] == f"models/{GEMINI_MODEL}"
    assert request["contents"] == [{"role": "user", "parts": [{"text": "Count these words."}]}]
    assert request["systemInstruction"]["parts"] == [{"text": "Gemini agent."}]
    assert answer.total_tokens == counted_tokens(request["contents"], request["systemInstruction"], None)


async def test_the_native_answer_comes_back_byte_for_byte(count_world: CountWorld) -> None:
    path = f"/v1/gemini/on-gemini/v1beta/models/{GEMINI_MODEL}:countTokens"
    status, body = await post(count_world.sidecar.url, path, {"contents": [{"parts": [{"text": "hi"}]}]})
    [sent] = count_world.gemini.requests
    total = counted_tokens(sent.body["generateContentRequest"]["contents"],
                           sent.body["generateContentRequest"]["systemInstruction"], None)  # fmt: skip
    assert (status, body) == (
        200,
        {"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]},
    )


async def test_a_claude_agent_counts_with_anthropic_count_tokens(count_world: CountWorld) -> None:
    answer = await count(count_world.sidecar.url, "on-claude", "Count these words.")
    [sent] = count_world.anthropic.counts
    assert sent.path == "/v1/messages/count_tokens"
    assert sent.body["model"] == "claude-test"
    assert sent.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Count these words."}]}
    ]
    assert sent.body["system"][0]["text"] == "Claude agent."
    assert sent.headers["x-api-key"] == "sk-ant-env"
    assert answer.total_tokens == anthropic_counted(sent.body)
    assert count_world.anthropic.requests == []


async def test_a_bedrock_agent_counts_with_count_tokens(count_world: CountWorld) -> None:
    answer = await count(count_world.sidecar.url, "on-bedrock", "Count these words.")
    [sent] = count_world.bedrock.requests
    assert (sent.operation, sent.validation_errors) == ("count-tokens", None)
    assert answer.total_tokens == bedrock_count_answer(sent.json)["inputTokens"]


async def test_other_agents_get_the_documented_estimate(count_world: CountWorld) -> None:
    answer = await count(count_world.sidecar.url, "on-openai", "a" * 40)
    # ceil((len("user") + 40 + len("OpenAI agent.")) / 4) + 4 per content (sidecar/policy/context.py:
    # every string value of the conversation counts, and the agent's system prompt)
    assert answer.total_tokens == math.ceil((4 + 40 + 13) / 4) + 4
    assert count_world.openai.received == []


async def test_bad_bodies_and_unknown_agents_are_answered_in_googles_shape(count_world: CountWorld) -> None:
    base = count_world.sidecar.url + "/v1/gemini"
    status, body = await post(base, f"/on-gemini/v1beta/models/{GEMINI_MODEL}:countTokens", {"contents": []})
    assert (status, body["error"]["status"]) == (400, "INVALID_ARGUMENT")
    assert body["error"]["message"].startswith("Invalid value at 'contents'")
    status, body = await post(
        base, f"/nobody/v1beta/models/{GEMINI_MODEL}:countTokens", {"contents": [{"parts": [{"text": "x"}]}]}
    )
    assert (status, body["error"]["status"]) == (404, "NOT_FOUND")
    assert body["error"]["message"] == "no agent 'nobody' on this sidecar"
    assert count_world.gemini.requests == []


def vertex_yaml(gemini: str, credentials_file: Path) -> str:
    return f"""
        version: 1
        providers:
          gemini:
            vertex: {{project: proj-1, location: us-central1, credentialsFile: "{credentials_file}"}}
        agents:
          on-vertex:
            systemPrompt: "Vertex agent."
            model: {{provider: gemini, modelId: {GEMINI_MODEL}, endpoint: "{gemini}"}}
        """


async def test_a_vertex_agent_counts_with_vertex_count_tokens(
    world: World, tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    sa = write_service_account(tmp_path / "sa.json", rsa_key, world.gemini_url + "/token")
    async with running_sidecar(compile_yaml(tmp_path, vertex_yaml(world.gemini_url, sa)), env={}) as sidecar:
        answer = await count(sidecar.url, "on-vertex", "Count these words.")
    [sent] = world.gemini.requests
    prefix = f"/v1/projects/proj-1/locations/us-central1/publishers/google/models/{GEMINI_MODEL}"
    assert (sent.surface, sent.path) == ("vertex", prefix + ":countTokens")
    assert sent.headers["Authorization"] == "Bearer ya29.token-1"
    assert sorted(sent.body) == ["contents", "systemInstruction"]
    assert answer.total_tokens == counted_tokens(sent.body["contents"], sent.body["systemInstruction"], None)
    assert orjson.loads(orjson.dumps(sent.body["systemInstruction"]))["parts"] == [{"text": "Vertex agent."}]
