"""The world of the count-token tests (Anthropic `count_tokens`, Gemini `:countTokens`): one sidecar
with an agent on each provider that has a count API — claude (the fake Anthropic API with
count_tokens), gemini (AI Studio), bedrock (SigV4, the fake checks every signature) — and one
without (openai, answered with the sidecar's estimate). Each agent has a system prompt of its
own, so a test can see the agent's policy in what was counted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from tests.fakes import bedrock_upstream
from tests.fakes.anthropic_coding import CodingAnthropic
from tests.fakes.bedrock_upstream import BedrockUpstream
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI
from tests.sidecar.harness import Sidecar, compile_yaml, running_sidecar

GEMINI_MODEL = "gemini-2.5-flash"
BEDROCK_MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"
ENV = {
    "ANTHROPIC_API_KEY": "sk-ant-env",
    "GEMINI_API_KEY": "g-env-key",
    "OPENAI_API_KEY": "sk-openai-env",
    "AWS_ACCESS_KEY_ID": bedrock_upstream.TEST_ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": bedrock_upstream.TEST_SECRET_KEY,
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def count_yaml(anthropic: str, gemini: str, bedrock: str, openai: str) -> str:
    return f"""
        version: 1
        agents:
          on-claude:
            systemPrompt: "Claude agent."
            model: {{provider: claude, modelId: claude-test, endpoint: "{anthropic}"}}
          on-gemini:
            systemPrompt: "Gemini agent."
            model: {{provider: gemini, modelId: {GEMINI_MODEL}, endpoint: "{gemini}"}}
          on-bedrock:
            systemPrompt: "Bedrock agent."
            model: {{provider: bedrock, modelId: "{BEDROCK_MODEL}", endpoint: "{bedrock}", region: us-east-1}}
          on-openai:
            systemPrompt: "OpenAI agent."
            model: {{provider: openai, modelId: gpt-test, endpoint: "{openai}"}}
        """


@dataclass
class CountWorld:
    anthropic: CodingAnthropic
    gemini: FakeGemini
    bedrock: BedrockUpstream
    openai: FakeOpenAI
    sidecar: Sidecar


async def _served(app: object) -> TestServer:
    server = TestServer(app)  # type: ignore[arg-type]
    await server.start_server()
    return server


@pytest.fixture
async def count_world(tmp_path: Path) -> AsyncIterator[CountWorld]:
    anthropic, gemini, bedrock = (
        CodingAnthropic(),
        FakeGemini(api_key=ENV["GEMINI_API_KEY"]),
        BedrockUpstream(),
    )
    servers = [await _served(anthropic.app()), await _served(gemini.app()), await _served(bedrock.app)]
    openai = await FakeOpenAI().start()
    urls = [str(server.make_url("")).rstrip("/") for server in servers]
    table = compile_yaml(tmp_path, count_yaml(*urls, openai.url))
    try:
        async with running_sidecar(table, env=ENV) as sidecar:
            yield CountWorld(anthropic, gemini, bedrock, openai, sidecar)
    finally:
        await openai.close()
        for server in servers:
            await server.close()
