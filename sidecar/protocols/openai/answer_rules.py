"""Declared, per-provider rules that make an OpenAI-compatible provider's answer OpenAI-shaped.

Each rule is a name; `RULES_BY_PROVIDER` says which a provider needs (data, not branches), and the
functions below apply them to a whole answer's `message` or a stream chunk's `delta`. Reasoning text
always leaves as `reasoning_content` (the field vLLM and DeepSeek use), never inside `content`.

- `content_parts`: Mistral Magistral sends `content` as a list of `text` and `thinking` chunks
  (`{"type": "thinking", "thinking": [{"type": "text", "text": …}]}`; Mistral's API spec,
  https://docs.mistral.ai/capabilities/reasoning/), plain and in `delta.content`.
- `reasoning_field`: Groq (`reasoning_format: parsed`, https://console.groq.com/docs/reasoning),
  OpenRouter (https://openrouter.ai/docs/use-cases/reasoning-tokens), Cerebras
  (https://inference-docs.cerebras.ai/capabilities/reasoning), Ollama and newer vLLM
  (https://docs.vllm.ai/en/latest/features/reasoning_outputs.html) name it `reasoning`.
- `think_tags`: Groq's `reasoning_format: raw` (the default for its Qwen/DeepSeek models) and
  Cerebras' `raw` put the reasoning in `content` between `<think>` and `</think>`.
- `vendor_usage`: Groq reports a stream's usage in `x_groq.usage` when `include_usage` is not
  honoured (https://console.groq.com/docs/openai); it becomes the chunk's `usage`.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any, Final

from astra_sidecar.sidecar.policy.reasoning import REASONING_FIELD

CONTENT_PARTS: Final = "content_parts"
REASONING_ALIAS: Final = "reasoning_field"
THINK_TAGS: Final = "think_tags"
VENDOR_USAGE: Final = "vendor_usage"

RULES_BY_PROVIDER: Final[MappingProxyType[str, frozenset[str]]] = MappingProxyType(
    {
        "mistral": frozenset({CONTENT_PARTS}),
        "groq": frozenset({REASONING_ALIAS, THINK_TAGS, VENDOR_USAGE}),
        "openrouter": frozenset({REASONING_ALIAS}),
        "cerebras": frozenset({REASONING_ALIAS, THINK_TAGS}),
        "ollama": frozenset({REASONING_ALIAS, THINK_TAGS}),
        "vllm": frozenset({REASONING_ALIAS}),
    }
)

OPEN_TAG: Final = "<think>"
CLOSE_TAG: Final = "</think>"
_LEADING_THINK = re.compile(r"\A\s*<think>(.*?)</think>\s*", re.DOTALL)


def rules_for(provider: str) -> frozenset[str]:
    return RULES_BY_PROVIDER.get(provider, frozenset())


def split_parts(parts: list[Any]) -> tuple[str, str]:
    """(text, reasoning) of a Mistral content-chunk list; other chunk types are not text."""
    text: list[str] = []
    reasoning: list[str] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "thinking":
            inner = part.get("thinking")
            reasoning.extend(_texts(inner) if isinstance(inner, list) else [])
        elif part.get("type") == "text" and isinstance(part.get("text"), str):
            text.append(part["text"])
    return "".join(text), "".join(reasoning)


def _texts(parts: list[Any]) -> list[str]:
    return [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]


def add_reasoning(target: dict[str, Any], text: str) -> None:
    if text:
        target[REASONING_FIELD] = str(target.get(REASONING_FIELD) or "") + text


def normalise_fields(target: dict[str, Any], rules: frozenset[str]) -> bool:
    """Apply `content_parts` and `reasoning_field` to a message or delta in place; True if changed."""
    changed = False
    content = target.get("content")
    if CONTENT_PARTS in rules and isinstance(content, list):
        text, reasoning = split_parts(content)
        target["content"] = text
        add_reasoning(target, reasoning)
        changed = True
    if REASONING_ALIAS in rules and "reasoning" in target:
        alias = target.pop("reasoning")
        add_reasoning(target, alias if isinstance(alias, str) else "")
        changed = True
    return changed


def normalise_message(message: dict[str, Any], rules: frozenset[str]) -> bool:
    """A whole answer's message: the field rules, then a leading `<think>…</think>` block."""
    changed = normalise_fields(message, rules)
    content = message.get("content")
    if THINK_TAGS in rules and isinstance(content, str):
        match = _LEADING_THINK.match(content)
        if match is not None:
            message["content"] = content[match.end() :]
            add_reasoning(message, match.group(1).strip())
            changed = True
    return changed


def vendor_usage(chunk: dict[str, Any], rules: frozenset[str]) -> bool:
    """Groq's `x_groq.usage` as the chunk's `usage` when the chunk has none; True if moved."""
    if VENDOR_USAGE not in rules or isinstance(chunk.get("usage"), dict):
        return False
    extra = chunk.get("x_groq")
    usage = extra.get("usage") if isinstance(extra, dict) else None
    if not isinstance(usage, dict):
        return False
    chunk["usage"] = usage
    return True


class ThinkTagSplitter:
    """Splits streamed `content` into content and reasoning at `<think>`/`</think>`, holding back a
    fragment that may be the start of a tag until the next delta shows what it is."""

    __slots__ = ("_held", "_inside", "_seen_text")

    def __init__(self) -> None:
        self._held = ""
        self._inside = False
        self._seen_text = False

    def feed(self, text: str) -> tuple[str, str]:
        data, self._held = self._held + text, ""
        content: list[str] = []
        reasoning: list[str] = []
        while data:
            tag = CLOSE_TAG if self._inside else OPEN_TAG
            at = data.find(tag)
            if at >= 0 and (self._inside or not (self._seen_text or data[:at].strip())):
                (reasoning if self._inside else content).append(data[:at])
                self._inside = not self._inside
                data = data[at + len(tag) :]
                continue
            keep = _partial_tag_suffix(data, tag) if (self._inside or not self._seen_text) else 0
            emitted, self._held = data[: len(data) - keep], data[len(data) - keep :]
            (reasoning if self._inside else content).append(emitted)
            break
        out = "".join(content)
        self._seen_text = self._seen_text or bool(out.strip())
        return out, "".join(reasoning)

    def flush(self) -> tuple[str, str]:
        held, self._held = self._held, ""
        return ("", held) if self._inside else (held, "")


def _partial_tag_suffix(data: str, tag: str) -> int:
    for size in range(min(len(tag) - 1, len(data)), 0, -1):
        if tag.startswith(data[-size:]):
            return size
    return 0
