"""What the Anthropic folder's tests share: the adapter's cluster, agent and OpenAI request
builders (`build` checks every translated request against the fake upstream's copy of the API's
rules), and the ingress tests' astra.yml and `World` (the fixture is in `conftest.py`).

The ingress `World`: one compiled astra.yml with `claude-native` (claude → the fake Anthropic
API, policy: system prompt with prompt cache, output cap, default temperature; OpenAI fallback),
`claude-governed` (the same with a denied tool: a restrictive tool policy, so always translated
for the answers' tool guard), `gpt-agent` (openai → the fake OpenAI API), `demo` (the built-in
mock) and `claude-byok` (claude with `credentials: passthrough`, OpenAI fallback on the
sidecar's key). Apps only change the SDK's base URL to `{sidecar}/v1/anthropic/{agent}`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import orjson
from anthropic import AsyncAnthropic
from anthropic.types import MessageParam, ToolParam
from openai.types.chat import ChatCompletion

from astra_sidecar.compiler.table import (
    Agent,
    BreakerPolicy,
    Cluster,
    Credentials,
    PromptCache,
    RequestRules,
    RetryPolicy,
    Timeouts,
    ToolPolicy,
)
from astra_sidecar.sidecar.protocols.anthropic.adapter import AnthropicAdapter
from astra_sidecar.sidecar.protocols.base import AuthMaterial, Secret
from tests.fakes.anthropic_upstream import FakeAnthropic, ToolUse, tool_message, usage, validate_request
from tests.fakes.openai_upstream import FakeOpenAI, Step
from tests.sidecar.harness import Sidecar

# --- the adapter: a cluster, an agent, OpenAI requests ----------------------------------------------

Json = dict[str, Any]

CLUSTER = Cluster(
    key="claude:claude-test:http://fake.invalid",
    provider="claude",
    wire="anthropic",
    model_id="claude-test",
    base_url="http://fake.invalid",
    auth="x-api-key",
    credentials=Credentials(mode="env", env="ANTHROPIC_API_KEY"),
    base_url_env=None,
    headers=MappingProxyType({}),
    breaker=BreakerPolicy(),
    rules=RequestRules(temperature_max=1.0, max_choices=1),
)
AGENT = Agent(
    id="helper",
    display_name=None,
    tier=None,
    plan=(CLUSTER.key,),
    max_context_tokens=None,
    max_output_tokens=None,
    temperature=None,
    system_prompt=None,
    tools=ToolPolicy(),
    retry=RetryPolicy(),
    timeouts=Timeouts(),
    request_timeout_ms=60000,
)
AUTH = AuthMaterial(token=Secret("sk-ant-test"))
ADAPTER = AnthropicAdapter()

WEATHER_TOOL: Json = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time"}}
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def user(content: Any) -> Json:
    return {"role": "user", "content": content}


def assistant(content: Any = None, tool_calls: list[Json] | None = None) -> Json:
    msg: Json = {"role": "assistant", "content": content}
    if tool_calls is not None:
        msg["tool_calls"] = tool_calls
    return msg


def call(id: str, name: str, arguments: str) -> Json:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


def tool_result(id: str, content: Any) -> Json:
    return {"role": "tool", "tool_call_id": id, "content": content}


def chat(*messages: Json, **extra: Any) -> Json:
    return {"model": "claude-test", "messages": list(messages), **extra}


def build(body: Json, *, agent: Agent = AGENT, cluster: Cluster = CLUSTER) -> Json:
    request = ADAPTER.build_request(cluster, agent, body, AUTH)
    payload: Json = orjson.loads(request.body)
    assert validate_request(request.headers, payload) is None
    return payload


def with_cache(system_prompt: bool = False, tools: bool = False) -> Agent:
    return dataclasses.replace(AGENT, prompt_cache=PromptCache(system_prompt=system_prompt, tools=tools))


def text(value: str) -> Json:
    return {"type": "text", "text": value}


def parse(msg: Json, request: Json | None = None) -> tuple[ChatCompletion, Json]:
    completion = ADAPTER.parse_response(CLUSTER, request or chat(user("q")), orjson.dumps(msg))
    validated = ChatCompletion.model_validate_json(completion.body)
    raw: Json = orjson.loads(completion.body)
    assert completion.usage is not None
    assert raw["usage"]["prompt_tokens"] == completion.usage.prompt_tokens
    assert raw["usage"]["completion_tokens"] == completion.usage.completion_tokens
    return validated, raw


PARALLEL = tool_message(
    ToolUse("toolu_01", "get_weather", {"city": "Paris", "when": {"day": "today", "hours": [9, 12, 18]}}),
    ToolUse("toolu_02", "get_time", {}),
    ToolUse("toolu_03", "get_weather", {"city": 'Zürich "quoted" \\ ünïcode'}),
    text="Let me look that up.",
    usage_=usage(5, 40, cache_creation=7, cache_read=300),
)


# --- the ingress world ------------------------------------------------------------------------

ENV = {"ANTHROPIC_API_KEY": "sk-ant-env", "OPENAI_API_KEY": "sk-openai-env"}
SDK_VERSION_HEADER = "2026-10-21"
USER: list[MessageParam] = [{"role": "user", "content": "Weather in Paris?"}]
WEATHER: ToolParam = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
DELETE: ToolParam = {"name": "delete_account", "input_schema": {"type": "object", "properties": {}}}


def astra_yml(anthropic_url: str, openai_url: str) -> str:
    return f"""
        version: 1
        settings:
          retry: {{maxRetries: 1, baseDelayMs: 100, maxDelayMs: 1000, jitter: 0}}
        agents:
          - id: claude-native
            systemPrompt: "You are terse."
            promptCache: {{systemPrompt: true}}
            model:
              provider: claude
              modelId: claude-test
              endpoint: {anthropic_url}
              maxOutputTokens: 512
              temperature: 0.4
              fallback:
                provider: openai
                modelId: gpt-fallback
                endpoint: {openai_url}
          - id: claude-governed
            systemPrompt: "You are terse."
            promptCache: {{systemPrompt: true}}
            tools: {{deny: [delete_account]}}
            model:
              provider: claude
              modelId: claude-test
              endpoint: {anthropic_url}
              maxOutputTokens: 512
              temperature: 0.4
              fallback:
                provider: openai
                modelId: gpt-fallback
                endpoint: {openai_url}
          - id: gpt-agent
            systemPrompt: "You are brief."
            model: {{provider: openai, modelId: gpt-test, endpoint: {openai_url}, maxOutputTokens: 300}}
          - id: demo
            model: {{provider: mock, modelId: astra-demo, mock: {{reply: "Hello from the demo agent."}}}}
          - id: claude-byok
            model:
              provider: claude
              modelId: claude-byok
              endpoint: {anthropic_url}
              credentials: passthrough
              fallback:
                provider: openai
                modelId: gpt-fallback
                endpoint: {openai_url}
        """


@dataclass
class World:
    anthropic: FakeAnthropic
    openai: FakeOpenAI
    sidecar: Sidecar
    clients: list[AsyncAnthropic] = field(default_factory=list)

    def client(self, agent: str, api_key: str = "sk-caller") -> AsyncAnthropic:
        """The official SDK, pointed at the agent's route: the only change an app makes."""
        client = AsyncAnthropic(
            base_url=f"{self.sidecar.url}/v1/anthropic/{agent}", api_key=api_key, max_retries=0, timeout=20
        )
        self.clients.append(client)
        return client


def sse(chunks: list[dict[str, Any]]) -> Step:
    return Step(kind="sse", chunks=chunks)


def openai_usage(prompt: int, completion_tokens: int, cached: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def usage_chunk(prompt: int, completion_tokens: int, cached: int = 0) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-test",
        "choices": [],
        "usage": openai_usage(prompt, completion_tokens, cached),
    }
