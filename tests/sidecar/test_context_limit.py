"""maxContextTokens before any upstream call: the estimate, the plan it leaves, the 400 otherwise."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors, types

from astra_sidecar.compiler.table import ToolPolicy
from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.policy.context import estimate_tokens, fit_plan, output_reserve
from astra_sidecar.sidecar.protocols.anthropic.ingress import CODEC as ANTHROPIC
from astra_sidecar.sidecar.protocols.codec import IngressCall, IngressCodec, RequestSize
from astra_sidecar.sidecar.protocols.gemini.ingress import CODEC as GEMINI
from astra_sidecar.sidecar.protocols.openai.ingress import CODEC as OPENAI
from tests.fakes.openai_upstream import FakeOpenAI, Step, completion
from tests.sidecar.harness import Sidecar, compile_yaml, running_sidecar

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

# --- the estimate ----------------------------------------------------------------------------------


def size(codec: IngressCodec, body: dict[str, Any]) -> RequestSize:
    """What the estimate reads of `body`, as the API's codec reports it."""
    return codec.size(IngressCall(agent_id="a", body=body, stream=False))


def test_openai_messages_text_and_an_image() -> None:
    body = {
        "model": "ignored-not-counted",
        "messages": [
            {"role": "system", "content": "abcd" * 10},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "x" * 8},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 90_000}},
                ],
            },
        ],
    }
    # strings: "system" + 40 + "user" + "text" + 8 = 62 characters; 2 messages; 1 image.
    assert estimate_tokens(size(OPENAI, body)) == math.ceil(62 / 4) + 2 * 4 + 1000


def test_anthropic_system_tools_and_the_agents_prompt() -> None:
    tool = {"name": "lookup", "input_schema": {"type": "object"}}
    body = {
        "system": "be brief",
        "messages": [{"role": "user", "content": [{"type": "image", "source": {"data": "B" * 5000}}]}],
        "tools": [tool],
        "max_tokens": 100,
    }
    # system 8 + role 4 + agent prompt 12 + tool keys and strings: name 4 + lookup 6 + input_schema 12
    # + type 4 + object 6 = 32 → 56 characters; 1 message; 1 image.
    assert estimate_tokens(size(ANTHROPIC, body), system_prompt="You are Ann.") == math.ceil(56 / 4) + 4 + 1000


def test_gemini_contents_system_instruction_and_inline_data() -> None:
    body = {
        "contents": [
            {
                "role": "user",
                "parts": [{"text": "hello"}, {"inlineData": {"mimeType": "image/png", "data": "C" * 999}}],
            },
            {"role": "model", "parts": [{"text": "hi"}]},
        ],
        "systemInstruction": {"parts": [{"text": "rules"}]},
    }
    # "user" + "hello" + "model" + "hi" + "rules" = 21 characters; 2 contents; 1 inline part.
    assert estimate_tokens(size(GEMINI, body)) == math.ceil(21 / 4) + 2 * 4 + 1000


@pytest.mark.parametrize(
    ("codec", "body", "agent_cap", "reserve"),
    [
        (OPENAI, {}, None, 0),
        (OPENAI, {}, 256, 256),
        (OPENAI, {"max_tokens": 100}, 256, 100),
        (ANTHROPIC, {"max_tokens": 1000}, 256, 256),
        (OPENAI, {"max_completion_tokens": 50, "max_tokens": 80}, None, 50),
        (GEMINI, {"generationConfig": {"maxOutputTokens": 70}}, None, 70),
        (OPENAI, {"max_tokens": True}, None, 0),
    ],
)
def test_output_reserve(codec: IngressCodec, body: dict[str, Any], agent_cap: int | None, reserve: int) -> None:
    assert output_reserve(size(codec, body).output_cap, agent_cap) == reserve


# --- through the sidecar ---------------------------------------------------------------------------

#: `small` has a 60-token window on an OpenAI cluster, then a 2000-token mock fallback, then an
#: undeclared one (inheriting 60). `tight` has one 60-token window and nothing else.
YAML = """
    version: 1
    agents:
      small:
        model:
          provider: openai
          modelId: gpt-small
          endpoint: URL
          maxContextTokens: 60
          maxOutputTokens: 20
          fallback:
            - {provider: mock, modelId: big, maxContextTokens: 2000, mock: {reply: "from the big window"}}
            - {provider: mock, modelId: also-small, mock: {reply: "never"}}
      tight:
        model: {provider: openai, modelId: gpt-tight, endpoint: URL, maxContextTokens: 60}
    """
SHORT = [{"role": "user", "content": "hi"}]
LONG = [{"role": "user", "content": "word " * 80}]  # 404 characters: about 105 tokens
HUGE = [{"role": "user", "content": "word " * 2000}]


@dataclass
class World:
    sidecar: Sidecar
    upstream: FakeOpenAI


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    upstream = await FakeOpenAI(Step(body=completion("from the primary", "gpt-small"))).start()
    try:
        table = compile_yaml(tmp_path, YAML.replace("URL", upstream.url))
        async with running_sidecar(table, env={"OPENAI_API_KEY": "k"}) as sidecar:
            yield World(sidecar, upstream)
    finally:
        await upstream.close()


async def test_a_request_that_fits_goes_to_the_primary(world: World) -> None:
    raw = await world.sidecar.client().chat.completions.with_raw_response.create(
        model="small", messages=SHORT
    )  # type: ignore[arg-type]
    assert raw.parse().choices[0].message.content == "from the primary"
    assert len(world.upstream.received) == 1


async def test_too_large_for_the_primary_goes_straight_to_the_larger_window(world: World) -> None:
    client = world.sidecar.client()
    raw = await client.chat.completions.with_raw_response.create(model="small", messages=LONG)  # type: ignore[arg-type]
    stream = await client.chat.completions.create(model="small", messages=LONG, stream=True)  # type: ignore[arg-type]
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert raw.parse().choices[0].message.content == "from the big window"
    assert (raw.headers["x-astra-provider"], raw.headers["x-astra-attempts"]) == ("mock", "1")
    assert text == "from the big window"
    assert world.upstream.received == []
    assert (
        world.sidecar.metric(
            "astra_upstream_attempts_total", {"agent": "small", "provider": "openai", "outcome": "ok"}
        )
        == 0
    )


async def test_the_answers_reserve_counts_too(world: World) -> None:
    """45 estimated tokens fit the 60-token window, but not with the answer's reserve: the caller's
    max_tokens (5000) capped at the agent's maxOutputTokens (20)."""
    client = world.sidecar.client()
    first = await client.chat.completions.create(model="small", messages=SHORT, max_tokens=5)  # type: ignore[arg-type]
    messages = [{"role": "user", "content": "w" * 160}]  # ceil(164 / 4) + 4 = 45 tokens; 45 + 20 > 60
    second = await client.chat.completions.create(model="small", messages=messages, max_tokens=5000)  # type: ignore[arg-type]
    assert (first.choices[0].message.content, second.choices[0].message.content) == (
        "from the primary",
        "from the big window",
    )


async def test_too_large_for_every_window_is_context_length_exceeded_in_openai_shape(world: World) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await world.sidecar.client().chat.completions.create(model="small", messages=HUGE)  # type: ignore[arg-type]
    estimate = math.ceil((len("user") + 10_000) / 4) + 4
    assert caught.value.body == {
        "message": f"This agent's maximum context length is 2000 tokens. However, this request needs about "
        f"{estimate + 20} tokens ({estimate} estimated for the input, 20 reserved for the answer). "
        "Please reduce the length of the messages.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
    assert world.upstream.received == []


async def test_context_length_exceeded_in_anthropic_shape(world: World) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=f"{world.sidecar.url}/v1/anthropic/tight", api_key="k", max_retries=0
    ) as client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client.messages.create(model="m", max_tokens=10, messages=LONG)  # type: ignore[arg-type]
    assert caught.value.body["type"] == "error"  # type: ignore[index]
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert caught.value.body["error"]["message"].startswith(
        "This agent's maximum context length is 60 tokens."
    )  # type: ignore[index]
    assert world.upstream.received == []


async def test_context_length_exceeded_in_gemini_shape(world: World) -> None:
    options = types.HttpOptions(base_url=f"{world.sidecar.url}/v1/gemini/tight", timeout=20_000)
    client = genai.Client(api_key="k", http_options=options)
    try:
        with pytest.raises(errors.ClientError) as caught:
            await client.aio.models.generate_content(model="m", contents="word " * 80)
    finally:
        await client.aio.aclose()
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    details = caught.value.details["error"]["details"]
    assert details[0] == {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "context_length_exceeded",
        "domain": "astra-sidecar",
    }
    assert details[1]["fieldViolations"][0]["field"] == "messages"
    assert world.upstream.received == []


async def test_agents_without_windows_are_left_alone(world: World) -> None:
    runtime = world.sidecar.state.runtime.agents["small"]
    unlimited = type(runtime)(
        agent=type(runtime.agent)(
            **{**_fields(runtime.agent), "max_context_tokens": None, "plan_limits": ()}
        ),
        policy=runtime.policy,
        plan=runtime.plan,
    )
    assert fit_plan(unlimited, RequestSize(HUGE)) is unlimited
    assert fit_plan(runtime, RequestSize(SHORT)) is runtime
    assert [c.cluster.model_id for c in fit_plan(runtime, RequestSize(LONG)).plan] == ["big"]
    with pytest.raises(ClientError):
        fit_plan(runtime, RequestSize(HUGE))


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


def test_tool_policy_restrictiveness() -> None:
    assert not ToolPolicy().restrictive
    assert ToolPolicy(allow=()).restrictive
    assert ToolPolicy(allow=("a",)).restrictive
    assert ToolPolicy(deny=("a",)).restrictive
