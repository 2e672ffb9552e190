"""The app the resilience tests drive: one agent, an OpenAI primary and (optionally) a Groq
fallback, both fake OpenAI upstreams (tests/fakes/openai_upstream.py), through the official SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from openai._legacy_response import LegacyAPIResponse
from openai.types.chat import ChatCompletion

from tests.fakes.openai_upstream import FakeOpenAI, Step, completion
from tests.sidecar.harness import Sidecar

ENV = {"OPENAI_API_KEY": "sk-primary-key", "GROQ_API_KEY": "gsk-fallback-key"}

#: Fast, exact backoff: 100 ms doubling, no jitter (so `ManualClock.sleeps` can be compared as is).
RETRY: Mapping[str, float] = {"maxRetries": 2, "baseDelayMs": 100, "maxDelayMs": 1000, "jitter": 0}

Upstreams = tuple[FakeOpenAI, FakeOpenAI]


def two_provider_yaml(
    primary: str,
    fallback: str | None,
    *,
    retries: int = 2,
    breaker: str = "",
    extra: str = "",
    retry: Mapping[str, float] | None = None,
) -> str:
    """astra.yml for agent `chat`: `retry` overrides keys of `RETRY` (`retries` is maxRetries);
    `breaker` is a `circuitBreaker:` settings line, `extra` lines of the agent; no fallback when
    `fallback` is None."""
    policy = {**RETRY, "maxRetries": retries, **(retry or {})}
    flow = ", ".join(f"{key}: {value}" for key, value in policy.items())
    fallback_block = (
        f"""
              fallback:
                provider: groq
                modelId: llama-fallback
                endpoint: {fallback}"""
        if fallback is not None
        else ""
    )
    return f"""
        version: 1
        settings:
          retry: {{{flow}}}
          {breaker}
        agents:
          - id: chat
            model:
              provider: openai
              modelId: gpt-primary
              endpoint: {primary}{fallback_block}
            {extra}
        """


@asynccontextmanager
async def two_upstreams() -> AsyncIterator[Upstreams]:
    """(primary, fallback): the primary answers "Hello!" until scripted, the fallback "from fallback"."""
    primary = await FakeOpenAI().start()
    fallback = await FakeOpenAI(Step(body=completion("from fallback", "llama-fallback"))).start()
    try:
        yield primary, fallback
    finally:
        await primary.close()
        await fallback.close()


async def chat(sidecar: Sidecar, agent: str = "chat", **body: Any) -> LegacyAPIResponse[ChatCompletion]:
    """One chat completion through the OpenAI SDK, with the answer's headers."""
    raw: LegacyAPIResponse[ChatCompletion] = await sidecar.client().chat.completions.with_raw_response.create(
        model=agent, messages=[{"role": "user", "content": "hi"}], **body
    )
    return raw
