"""The reasoning controls of the other ingress APIs as one effort, and `expose: false` on OpenAI
answers (`sidecar/policy/reasoning.py`)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from astra_sidecar.sidecar.policy.reasoning import (
    effort_from_thinking,
    effort_from_thinking_config,
    hide_in_chunks,
    hide_in_completion,
)


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        ({"type": "disabled"}, "none"),
        ({"type": "adaptive"}, "medium"),
        ({"type": "enabled", "budget_tokens": 1024}, "low"),
        ({"type": "enabled", "budget_tokens": 10000}, "medium"),
        ({"type": "enabled", "budget_tokens": 32000}, "high"),
        ({"type": "enabled"}, None),
        (None, None),
    ],
)
def test_anthropic_thinking(thinking: Any, effort: str | None) -> None:
    assert effort_from_thinking(thinking) == effort


@pytest.mark.parametrize(
    ("config", "effort"),
    [
        ({"thinkingBudget": 0}, "none"),
        ({"thinkingBudget": -1}, "medium"),
        ({"thinkingBudget": 24576, "includeThoughts": True}, "high"),
        ({"thinkingLevel": "LOW"}, "low"),
        ({"includeThoughts": True}, None),
    ],
)
def test_gemini_thinking_config(config: Any, effort: str | None) -> None:
    assert effort_from_thinking_config(config) == effort


def test_hidden_completion_keeps_usage() -> None:
    usage = {
        "prompt_tokens": 5,
        "completion_tokens": 30,
        "completion_tokens_details": {"reasoning_tokens": 20},
    }
    message = {"role": "assistant", "content": "Hi.", "reasoning_content": "thinking…"}
    raw = orjson.dumps({"choices": [{"index": 0, "message": message}], "usage": usage})
    hidden = orjson.loads(hide_in_completion(raw))
    assert hidden["choices"][0]["message"] == {"role": "assistant", "content": "Hi."}
    assert hidden["usage"] == usage


def test_hidden_chunks_drop_reasoning_only_chunks() -> None:
    def chunk(delta: Any, finish: str | None = None) -> bytes:
        return orjson.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    chunks = [
        chunk({"reasoning_content": "a"}),
        chunk({"content": "Hi", "reasoning_content": "b"}),
        chunk({}, "stop"),
    ]
    out = [orjson.loads(c)["choices"][0] for c in hide_in_chunks(chunks)]
    assert out == [
        {"index": 0, "delta": {"content": "Hi"}, "finish_reason": None},
        orjson.loads(chunks[2])["choices"][0],
    ]
