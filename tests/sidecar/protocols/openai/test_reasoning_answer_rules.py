"""Declared answer rules of OpenAI-compatible providers, each on a documented example shape."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from astra_sidecar.sidecar.protocols.openai.adapter import OpenAICompatAdapter, OpenAIStreamTranslator
from astra_sidecar.sidecar.protocols.openai.answer_rules import ThinkTagSplitter
from tests.builders import cluster

ADAPTER = OpenAICompatAdapter()


def answer(message: dict[str, Any], **extra: Any) -> bytes:
    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop"}
    return orjson.dumps({"id": "x", "object": "chat.completion", "choices": [choice], **extra})


def parsed(provider: str, raw: bytes) -> dict[str, Any]:
    served = dataclasses.replace(cluster("openai"), provider=provider)
    body: dict[str, Any] = orjson.loads(ADAPTER.parse_response(served, {}, raw).body)
    return body["choices"][0]["message"]


def sse(*chunks: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def streamed(provider: str, raw: bytes) -> tuple[str, str, OpenAIStreamTranslator]:
    translator = OpenAIStreamTranslator(provider)
    chunks = [orjson.loads(p) for p in [*translator.feed(raw), *translator.finish()]]
    deltas = [c["choices"][0]["delta"] for c in chunks if c.get("choices")]
    content = "".join(d.get("content") or "" for d in deltas)
    assert all(isinstance(d.get("content", ""), str) for d in deltas)
    return content, "".join(d.get("reasoning_content") or "" for d in deltas), translator


def delta(content: Any = None, finish: str | None = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {**fields}
    if content is not None:
        body["content"] = content
    return {
        "id": "x",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": body, "finish_reason": finish}],
    }


# Mistral Magistral (docs.mistral.ai/capabilities/reasoning): content is a list of chunks.
MAGISTRAL = [
    {"type": "thinking", "thinking": [{"type": "text", "text": "2+2 is basic arithmetic."}]},
    {"type": "text", "text": "4"},
]


def test_mistral_content_list_becomes_text_and_reasoning_content() -> None:
    message = parsed("mistral", answer({"content": MAGISTRAL}))
    assert message["content"] == "4"
    assert message["reasoning_content"] == "2+2 is basic arithmetic."


def test_mistral_streamed_thinking_chunks() -> None:
    raw = sse(delta([MAGISTRAL[0]]), delta([{"type": "text", "text": "4"}]), delta("", "stop"))
    content, reasoning, _ = streamed("mistral", raw)
    assert (content, reasoning) == ("4", "2+2 is basic arithmetic.")


def test_openai_answers_pass_byte_for_byte() -> None:
    raw = answer({"content": "4", "refusal": None})
    assert ADAPTER.parse_response(cluster("openai"), {}, raw).body == raw


# Groq reasoning_format=parsed (console.groq.com/docs/reasoning): `message.reasoning`.
@pytest.mark.parametrize("provider", ["groq", "openrouter", "cerebras", "ollama", "vllm"])
def test_reasoning_field_is_renamed(provider: str) -> None:
    message = parsed(provider, answer({"content": "4", "reasoning": "Adding two and two."}))
    assert message == {"role": "assistant", "content": "4", "reasoning_content": "Adding two and two."}


def test_groq_raw_think_tags_plain() -> None:
    message = parsed("groq", answer({"content": "<think>\nTwo plus two.\n</think>\n\n4"}))
    assert (message["content"], message["reasoning_content"]) == ("4", "Two plus two.")


def test_groq_raw_think_tags_streamed_across_chunk_boundaries() -> None:
    pieces = ["<thi", "nk>Two plus", " two.</th", "ink>4", " exactly"]
    raw = sse(*(delta(p) for p in pieces), delta("", "stop"))
    content, reasoning, _ = streamed("groq", raw)
    assert (content, reasoning) == ("4 exactly", "Two plus two.")


def test_think_tags_after_text_are_content() -> None:
    splitter = ThinkTagSplitter()
    assert splitter.feed("Use <think> tags") == ("Use <think> tags", "")


def test_groq_usage_read_from_x_groq() -> None:
    groq_usage = {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42,
                  "completion_tokens_details": {"reasoning_tokens": 20}}  # fmt: skip
    raw = sse(delta("4"), {**delta(None, "stop"), "x_groq": {"id": "req_1", "usage": groq_usage}})
    _, _, translator = streamed("groq", raw)
    assert translator.usage is not None
    assert (translator.usage.prompt_tokens, translator.usage.completion_tokens) == (12, 30)
    assert translator.usage.reasoning_tokens == 20
