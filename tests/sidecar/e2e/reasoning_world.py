"""One sidecar in front of four fake upstreams that reason, for the reasoning tests of every ingress.

The fakes answer with the providers' documented reasoning shapes: Anthropic signed `thinking`
blocks (https://docs.claude.com/en/docs/build-with-claude/extended-thinking), Gemini `thought`
parts and `thoughtSignature`s (https://ai.google.dev/gemini-api/docs/thinking), Bedrock Converse
`reasoningContent` (https://docs.aws.amazon.com/bedrock/latest/userguide/claude-messages-extended-thinking.html)
and OpenRouter's `reasoning` field (https://openrouter.ai/docs/use-cases/reasoning-tokens). The
Anthropic and Bedrock fakes refuse a tool turn whose signed reasoning did not come back unchanged,
and the Gemini fake (as Gemini 3) one whose function call lost its signature.

Agents: `claude`, `gemini` (Gemini 3 Pro), `bedrock` (Claude 3.7), `router` (OpenRouter), each
without a default; `claude-hidden` and `gemini-hidden` with `expose: false`; `claude-default`,
`gemini-default` and `bedrock-default` with reasoning defaults.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer
from anthropic import AsyncAnthropic
from google import genai
from google.genai import types

from tests.fakes import bedrock_upstream
from tests.fakes.anthropic_upstream import FakeAnthropic, Reply, message, signed_thinking
from tests.fakes.bedrock_upstream import (
    Answer,
    BedrockUpstream,
    converse_response,
    signed_reasoning,
    tool_use,
)
from tests.fakes.gemini_upstream import (
    FakeGemini,
    JsonReply,
    call_parts,
    candidate,
    response,
    thought_part,
    usage_metadata,
)
from tests.fakes.openai_upstream import FakeOpenAI, Step
from tests.sidecar.harness import Sidecar, compile_yaml, running_sidecar

Json = dict[str, Any]

THOUGHT = "The user wants the weather in Paris, so I call get_weather first."
GEMINI_SIGNATURE = "CiQB0e2Kb7ZmFwGnhZ0JrT0zSgH0lO0r1o3f2F7c3mT0cGxhY2U="
BEDROCK_MODEL = "anthropic.claude-3-7-sonnet-20250219-v1:0"
ENV = {
    "ANTHROPIC_API_KEY": "sk-ant-e2e",
    "GEMINI_API_KEY": "g-key",
    "OPENROUTER_API_KEY": "or-key",
    "AWS_ACCESS_KEY_ID": bedrock_upstream.TEST_ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": bedrock_upstream.TEST_SECRET_KEY,
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def astra_yml(anthropic: str, gemini: str, bedrock: str, router: str) -> str:
    claude = f"provider: claude, modelId: claude-sonnet-4-5, endpoint: {anthropic}, maxOutputTokens: 4096"
    gemini3 = f'provider: gemini, modelId: gemini-3-pro-preview, endpoint: "{gemini}", maxOutputTokens: 2000'
    flash = f'provider: gemini, modelId: gemini-2.5-flash, endpoint: "{gemini}"'
    converse = f"provider: bedrock, modelId: {BEDROCK_MODEL}, endpoint: {bedrock}, region: us-east-1"
    return f"""
        version: 1
        agents:
          claude: {{model: {{{claude}}}}}
          claude-hidden: {{model: {{{claude}, reasoning: {{effort: low, expose: false}}}}}}
          claude-default: {{model: {{{claude}, reasoning: {{effort: medium, budgetTokens: 3000}}}}}}
          gemini: {{model: {{{gemini3}}}}}
          gemini-hidden: {{model: {{{gemini3}, reasoning: {{expose: false}}}}}}
          gemini-default: {{model: {{{flash}, maxOutputTokens: 40000, reasoning: {{budgetTokens: 30000}}}}}}
          bedrock: {{model: {{{converse}, maxOutputTokens: 3000}}}}
          bedrock-default: {{model: {{{converse}, maxOutputTokens: 3000, reasoning: {{effort: high}}}}}}
          router: {{model: {{provider: openrouter, modelId: deepseek/deepseek-r1, endpoint: "{router}"}}}}
        """


@dataclass
class World:
    sidecar: Sidecar
    anthropic: FakeAnthropic
    gemini: FakeGemini
    bedrock: BedrockUpstream
    router: FakeOpenAI
    closers: list[Any] = field(default_factory=list)

    def anthropic_client(self, agent: str) -> AsyncAnthropic:
        client = AsyncAnthropic(
            base_url=f"{self.sidecar.url}/v1/anthropic/{agent}",
            api_key="sk-caller",
            max_retries=0,
            timeout=20,
        )
        self.closers.append(client.close)
        return client

    def gemini_client(self, agent: str) -> genai.Client:
        options = types.HttpOptions(base_url=f"{self.sidecar.url}/v1/gemini/{agent}", timeout=20_000)
        client = genai.Client(api_key="client-key", http_options=options)
        self.closers.append(client.aio.aclose)
        return client


async def _serve(stack: AsyncExitStack, app: Any) -> str:
    server = TestServer(app)
    await server.start_server()
    stack.push_async_callback(server.close)
    return str(server.make_url("")).rstrip("/")


@asynccontextmanager
async def reasoning_world(tmp_path: Path) -> AsyncIterator[World]:
    anthropic, gemini = FakeAnthropic(), FakeGemini(api_key="g-key", require_signatures=True)
    bedrock, router = BedrockUpstream(), FakeOpenAI()
    async with AsyncExitStack() as stack:
        await router.start()
        stack.push_async_callback(router.close)
        urls = [
            await _serve(stack, anthropic.app()),
            await _serve(stack, gemini.app()),
            await _serve(stack, bedrock.app),
        ]
        table = compile_yaml(tmp_path, astra_yml(*urls, router.url))
        async with running_sidecar(table, env=ENV) as sidecar:
            world = World(sidecar, anthropic, gemini, bedrock, router)
            try:
                yield world
            finally:
                for close in reversed(world.closers):
                    await close()


# --- the providers' documented reasoning answers ---------------------------------------------------


def claude_thinking_then_tool() -> Reply:
    blocks = [
        signed_thinking(THOUGHT),
        {
            "type": "tool_use",
            "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "get_weather",
            "input": {"city": "Paris"},
        },
    ]
    return Reply(message(blocks, stop_reason="tool_use"))


def claude_thinking_then_text(text: str = "Sunny, 18°C.") -> Reply:
    return Reply(message([signed_thinking(THOUGHT), {"type": "text", "text": text}]))


def gemini_thought_then_text(text: str = "Sunny, 18°C.") -> JsonReply:
    parts = [thought_part(THOUGHT), {"text": text}]
    return JsonReply(response([candidate(parts)], usage=usage_metadata(40, 6, thoughts=120)))


def gemini_thought_then_call() -> JsonReply:
    parts = [
        thought_part(THOUGHT),
        *call_parts([("get_weather", {"city": "Paris"})], signature=GEMINI_SIGNATURE),
    ]
    return JsonReply(response([candidate(parts)], usage=usage_metadata(40, 10, thoughts=120)))


def gemini_text(text: str) -> JsonReply:
    return JsonReply(response([candidate([{"text": text}])], usage=usage_metadata(60, 8)))


def bedrock_thought_then_call() -> Answer:
    blocks = [
        signed_reasoning(THOUGHT),
        tool_use("tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "get_weather", {"city": "Paris"}),
    ]
    return Answer(converse_response(blocks, "tool_use"))


def bedrock_thought_then_text(text: str = "Sunny, 18°C.") -> Answer:
    return Answer(converse_response([signed_reasoning(THOUGHT), {"text": text}], "end_turn"))


def router_reasoning_answer(text: str = "Sunny, 18°C.") -> Step:
    """OpenRouter's documented answer shape: the reasoning in `message.reasoning`."""
    return Step(
        body={
            "id": "gen-1733",
            "object": "chat.completion",
            "created": 1733000000,
            "model": "deepseek/deepseek-r1",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "reasoning": THOUGHT},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 12,
                "completion_tokens": 40,
                "total_tokens": 52,
                "completion_tokens_details": {"reasoning_tokens": 30},
            },
        }
    )


def router_reasoning_stream(text: str = "Sunny, 18°C.") -> Step:
    base = {
        "id": "gen-1733",
        "object": "chat.completion.chunk",
        "created": 1733000000,
        "model": "deepseek/deepseek-r1",
    }

    def chunk(delta: Json, finish: str | None = None, **extra: Any) -> Json:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}

    half = len(THOUGHT) // 2
    usage = {
        "prompt_tokens": 12,
        "completion_tokens": 40,
        "total_tokens": 52,
        "completion_tokens_details": {"reasoning_tokens": 30},
    }
    chunks = [
        chunk({"role": "assistant", "content": "", "reasoning": THOUGHT[:half]}),
        chunk({"content": "", "reasoning": THOUGHT[half:]}),
        chunk({"content": text}),
        chunk({}, "stop"),
        {**base, "choices": [], "usage": usage},
    ]
    return Step(kind="sse", chunks=chunks)
