"""`maxContextTokens`, enforced before any upstream call, on an estimate of the request's size.

The estimate (no tokenizer: it must be cheap, the same for every provider, and err on the large
side for English text):

    tokens = ceil(characters / 4) + 4 * messages + 1000 * media_parts

- *characters*: every string in the conversation, the caller's own system text and the agent's
  system prompt template, and every key and string of the tool definitions — each API's codec
  says where those are (`IngressCodec.size`: `messages`, `contents`, `system`,
  `systemInstruction`, `tools`, legacy `functions`…);
- *messages*: entries of the conversation (4 tokens each for roles and framing);
- *media parts*: images, audio, documents and files (`image_url`, `input_audio`, `file`,
  `image`, `document`, Gemini `inlineData` / `fileData`) count a fixed 1000 tokens each, whatever
  their size; their bytes are not counted as text.

The answer needs room too: the reserve is the output cap that will be sent — the caller's
(`max_completion_tokens`, `max_tokens`, `generationConfig.maxOutputTokens`: the smallest it
set), at most the agent's `maxOutputTokens` — or the agent's cap when the caller gave none (0
without either).

Each plan entry has its own window (`Agent.context_limits()`: a fallback's `maxContextTokens`,
else the agent's). Entries whose window is smaller than estimate + reserve are left out of this
request's plan, so a request too large for the primary goes straight to a fallback with a larger
window (no attempt, no breaker report on the primary). When no entry fits, the request is a 400
`context_length_exceeded` (param `messages`) in the caller's format. Agents without any window
skip all of this.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.codec import RequestSize

if TYPE_CHECKING:  # types only: the runtime imports the protocol registry
    from astra_sidecar.sidecar.runtime import AgentRuntime

CHARS_PER_TOKEN = 4
MESSAGE_TOKENS = 4
MEDIA_TOKENS = 1000

_MEDIA_TYPES = frozenset({"image_url", "input_image", "input_audio", "image", "audio", "document", "file"})


def _is_media(node: Mapping[str, Any]) -> bool:
    kind = node.get("type")
    return (type(kind) is str and kind in _MEDIA_TYPES) or "inlineData" in node or "fileData" in node


def _measure(value: Any, *, keys: bool) -> tuple[int, int]:
    """(characters, media parts) in a JSON value; with `keys`, object keys count as text too."""
    chars = media = 0
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        node = pop()
        kind = type(node)
        if kind is str:
            chars += len(node)
        elif kind is list:
            extend(node)
        elif kind is dict:
            if keys:
                chars += sum(map(len, node))
            elif _is_media(node):
                media += 1
                continue
            extend(node.values())
    return chars, media


def estimate_tokens(size: RequestSize, system_prompt: str | None = None) -> int:
    """The documented estimate of a request's input tokens (see the module docstring)."""
    conversation = size.conversation if isinstance(size.conversation, list) else []
    chars, media = _measure(conversation, keys=False)
    system_chars, system_media = _measure(size.system, keys=False)
    chars += len(system_prompt or "") + system_chars + sum(_measure(t, keys=True)[0] for t in size.tools)
    media += system_media
    return math.ceil(chars / CHARS_PER_TOKEN) + MESSAGE_TOKENS * len(conversation) + MEDIA_TOKENS * media


def output_reserve(requested: int | None, agent_cap: int | None) -> int:
    """Tokens kept free for the answer: the caller's output cap, at most the agent's."""
    if requested is None:
        return agent_cap or 0
    return requested if agent_cap is None else min(requested, agent_cap)


def fit_plan(runtime: AgentRuntime, size: RequestSize) -> AgentRuntime:
    """`runtime`, or a copy whose plan keeps only the entries whose window fits this request."""
    agent = runtime.agent
    if agent.max_context_tokens is None and not agent.plan_limits:
        return runtime
    limits = agent.context_limits()
    estimate = estimate_tokens(size, agent.system_prompt)
    needed = estimate + output_reserve(size.output_cap, agent.max_output_tokens)
    fits = [limit is None or needed <= limit for limit in limits]
    if all(fits):
        return runtime
    if not any(fits):
        largest = max(limit for limit in limits if limit is not None)
        raise ClientError(
            400,
            f"This agent's maximum context length is {largest} tokens. However, this request needs "
            f"about {needed} tokens ({estimate} estimated for the input, {needed - estimate} "
            "reserved for the answer). Please reduce the length of the messages.",
            code="context_length_exceeded",
            param="messages",
        )
    return replace(runtime, plan=tuple(c for c, fit in zip(runtime.plan, fits, strict=True) if fit))
