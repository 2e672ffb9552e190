"""What a protocol folder offers besides its upstream adapter (`astra_sidecar.sidecar.protocols.base.Adapter`).

- **`IngressCodec`**, for an API the sidecar accepts: parse the caller's request, answer and fail
  in its shape, translate to and from OpenAI, report what the size estimate reads, and the route
  table. Every route it lists is served by the one request flow (`astra_sidecar.sidecar.serving.flow`) unless
  it names a handler of its own (model lists, catch-all 404s); a failure on any of its routes is
  answered in its shape, because the route that matched names the codec.
- **`NativePath`** (optional), when callers of that API may reach clusters of the same wire format
  unchanged: the agent's policy applied in the format (through `PolicyAccess`), the upstream
  request, `validate` for a whole answer and `watch` for a stream. Native answers go back to the
  client byte for byte, so these only look: nothing is translated and thrown away.
- **`PolicyAccess`**: the small accessors the agent policy (`astra_sidecar.sidecar.policy.agent`) uses to read
  and change one API's request body, so the policy itself is written once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from aiohttp import web

from astra_sidecar.compiler.table import Agent, Cluster, PromptCache
from astra_sidecar.sidecar.errors import UpstreamMalformedError
from astra_sidecar.sidecar.protocols.base import AuthMaterial, Body, Failure, UpstreamRequest, Usage

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(slots=True)  # built per request: a frozen one costs 4x to build
class IngressCall:
    """One parsed client request. `route` holds path parameters (e.g. Gemini's model/method);
    `inbound` is the caller's headers as credential sources see them (Gemini's `?key=` folded in
    as `x-goog-api-key`)."""

    agent_id: str
    body: Body
    stream: bool
    route: Mapping[str, str] = field(default_factory=dict)
    inbound: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)  # built per request: a frozen one costs 4x to build
class RequestSize:
    """The parts of a request that its size estimate reads (`astra_sidecar.sidecar.policy.context`): the
    conversation (messages or contents), the caller's own system text, the tool definitions, and
    the output cap the caller asked for (None when it asked for none)."""

    conversation: Any
    system: Any = None
    tools: tuple[Any, ...] = ()
    output_cap: int | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """One route of an ingress API. Without a handler, the request flow serves it."""

    method: str
    path: str
    handler: Handler | None = None


def first_choice(raw: bytes) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(completion, its first choice, that choice's message) of an OpenAI `chat.completion`'s
    bytes; anything else is an `UpstreamMalformedError`."""
    try:
        completion = orjson.loads(raw)
        choice = completion["choices"][0]
        message = choice.get("message") or {}
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise UpstreamMalformedError("not a chat completion") from exc
    return completion, choice, message


def encode_chunks(payloads: list[bytes], on_chunk: Callable[[dict[str, Any]], list[bytes]]) -> bytes:
    """The stream bytes of OpenAI chunk payloads: each decoded once and handed to `on_chunk` (a
    payload that is no JSON object is skipped), its events joined."""
    out: list[bytes] = []
    for payload in payloads:
        chunk = orjson.loads(payload)
        if isinstance(chunk, dict):
            out.extend(on_chunk(chunk))
    return b"".join(out)


class StreamEncoder(Protocol):
    """Turns OpenAI chunk payloads (JSON bytes) into the ingress API's stream bytes. One with
    `frames_openai_sse = True` frames them as OpenAI `data:` events, as an OpenAI-compatible
    upstream does (`base.StreamTranslator`, `relayed_as_is`)."""

    def encode(self, payloads: list[bytes]) -> bytes: ...

    def close(self) -> bytes:
        """The bytes that end a complete stream (e.g. `data: [DONE]`, `message_stop`)."""
        ...


class IngressCodec(Protocol):
    name: str
    wire: str
    stream_content_type: str

    def parse(
        self, body: Any, route: Mapping[str, str], query: Mapping[str, str], headers: Mapping[str, str]
    ) -> IngressCall:
        """Validate the client's body; raise `ClientError` naming the offending field."""
        ...

    def error_body(self, failure: Failure) -> bytes: ...

    def stream_error(self, failure: Failure) -> bytes:
        """The final in-stream event for a failure after the first byte."""
        ...

    def to_openai(self, call: IngressCall) -> Body: ...

    def completion_from_openai(self, raw: bytes, call: IngressCall) -> bytes: ...

    def stream_encoder(self, call: IngressCall) -> StreamEncoder: ...

    def size(self, call: IngressCall) -> RequestSize: ...

    def routes(self) -> Sequence[Route]: ...


class PolicyAccess(Protocol):
    """How the agent policy reads and changes one API's request body (a copy it owns)."""

    #: The output cap to send when neither the caller nor the agent set one (Anthropic requires one).
    default_output_cap: int | None

    def remove_tools(self, body: Body, refused: Callable[[str], bool]) -> tuple[str, ...]:
        """Removes every tool `refused` names, and what only they used (e.g. a tool choice);
        returns the removed names in order. Raises `ClientError(400, code="tool_not_allowed")`
        when the body forces a removed tool."""
        ...

    def temperature(self, body: Body) -> float | None: ...

    def set_temperature(self, body: Body, value: float) -> None: ...

    def sampling_chosen(self, body: Body) -> bool:
        """True when the caller chose another sampling control that excludes a default
        temperature (Anthropic: `top_p`, or extended thinking)."""
        ...

    def output_cap(self, body: Body) -> int | None:
        """The largest output cap the caller set, or None."""
        ...

    def set_output_cap(self, body: Body, value: int) -> None:
        """Caps every output limit present at `value`, or sets the API's own one if none is."""
        ...

    def set_model(self, body: Body, model_id: str) -> None: ...

    def add_system_prompt(self, body: Body, prompt: str | None, cache: PromptCache) -> None:
        """Puts the agent's rendered prompt (if any) before the caller's system text, and applies
        the agent's prompt-cache marks where the API has them."""
        ...

    def choices(self, body: Body) -> tuple[int | None, str]:
        """The number of answers asked for, and that field's path for an error's `param`
        (e.g. `n`, `generationConfig.candidateCount`)."""
        ...

    def apply_reasoning_default(self, body: Body, agent: Agent, model_id: str) -> None:
        """Writes the agent's reasoning default (`model.reasoning`) for `model_id` into a body
        that asks for no reasoning (`astra_sidecar.sidecar.policy.reasoning_defaults`)."""
        ...


class StreamWatch(Protocol):
    """Looks at a native stream as it is relayed: usage, in-stream errors, cuts."""

    usage: Usage | None

    def feed(self, data: bytes) -> bool:
        """Reads the next upstream bytes; True once a whole event has arrived. Raises
        `UpstreamStreamError` for an error event."""
        ...

    def finish(self) -> None:
        """At upstream EOF; raises `UpstreamStreamError` if the stream ended before its end."""
        ...


class NativePath(Protocol):
    access: PolicyAccess

    def request(self, cluster: Cluster, body: Body, auth: AuthMaterial, call: IngressCall) -> UpstreamRequest: ...

    def validate(self, cluster: Cluster, raw: bytes) -> Usage | None:
        """The usage of a whole native answer. Raises `UpstreamMalformedError` when it is not an
        answer of this API, `UpstreamStatusError` when it is an error inside a 200."""
        ...

    def watch(self, cluster: Cluster) -> StreamWatch: ...
