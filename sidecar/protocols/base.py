"""The provider adapter protocol: one implementation per wire format, pure and network-free.

The sidecar normalises every client request to an OpenAI Chat Completions body (a dict, after the
agent's policy is applied). An adapter then

1. builds the upstream HTTP request for one cluster (`build_request`; the agent is passed for its
   limits and prompt-cache marks, the body already has the agent's policy applied),
2. turns a whole upstream answer into an OpenAI `chat.completion` (`parse_response`),
3. translates a streamed answer, frame by frame, into OpenAI `chat.completion.chunk` payloads
   (`stream_translator`, an object that holds its own state), and
4. classifies an upstream failure (`classify_error`): the status the client sees, whether to
   retry, whether it counts against the cluster's circuit breaker, and any retry-after hint.

Adapters never read the environment, never open sockets and never log. Credentials arrive as an
`AuthMaterial` resolved by the credentials layer; I/O happens in `astra_sidecar.sidecar.upstream`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from astra_sidecar.compiler.table import Agent, Cluster

Body = dict[str, Any]


class Secret:
    """A credential value whose repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """Frozen AWS credentials (from botocore's chain), for SigV4 signing."""

    access_key: str
    secret_key: Secret
    token: Secret | None = None

    def __repr__(self) -> str:
        return f"AwsCredentials(access_key={self.access_key[:4]}…)"


@dataclass(frozen=True, slots=True)
class AuthMaterial:
    """What an adapter may put on the wire: a key/token for the provider's auth header, or AWS
    credentials for SigV4. Both None means no auth (keyless local servers, `mock`)."""

    token: Secret | None = None
    aws: AwsCredentials | None = None


NO_AUTH = AuthMaterial()


@dataclass(slots=True)  # built per request: a frozen one costs 4x to build
class UpstreamRequest:
    url: str
    headers: Mapping[str, str]
    body: bytes
    stream: bool
    method: str = "POST"


@dataclass(slots=True)  # built per request: a frozen one costs 4x to build
class Usage:
    """Token counts in OpenAI terms. `cached_tokens` (read from a prompt cache) and
    `cache_write_tokens` (written to it) are parts of `prompt_tokens`; `reasoning_tokens` is part of
    `completion_tokens`. New fields go last, with a default: adapters build this positionally."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(slots=True)  # built per request: a frozen one costs 4x to build
class Completion:
    """A whole answer in OpenAI format: the JSON bytes sent to the client, and its usage."""

    body: bytes
    usage: Usage | None


@dataclass(frozen=True, slots=True)
class Failure:
    """A classified upstream failure.

    `status` and `error_type`/`code`/`message` are what the client sees (OpenAI error shape);
    `retryable` lets the retry loop try again; `breaker_counts` counts it against the cluster's
    breaker (provider-side failures do, client mistakes do not); `retry_after_s` is the
    provider's own hint, if any."""

    status: int
    error_type: str
    message: str
    code: str | None = None
    retryable: bool = False
    breaker_counts: bool = False
    retry_after_s: float | None = None
    param: str | None = None


class StreamTranslator(Protocol):
    """Fed raw upstream bytes in arrival order; returns OpenAI chunk payloads (JSON bytes, without
    the `data: ` framing). Raises `astra_sidecar.sidecar.errors.UpstreamStreamError` for an error the upstream
    reports mid-stream. `finish()` is called at upstream EOF and returns the closing chunks; it
    raises `UpstreamStreamError` when the stream ended before its terminator (a cut).

    A translator may also have `relayed_as_is(data) -> bool`: whether a read is whole OpenAI
    `data:` events with nothing in them to change or record. To an OpenAI client
    (`codec.StreamEncoder`, `frames_openai_sse`) such a read goes out as it came, with no decoding
    and no re-encoding (`serving/relay.py`); the translator's state is as if it had been fed."""

    usage: Usage | None

    def feed(self, data: bytes) -> list[bytes]: ...

    def finish(self) -> list[bytes]: ...


class Adapter(Protocol):
    def build_request(
        self, cluster: Cluster, agent: Agent, body: Body, auth: AuthMaterial
    ) -> UpstreamRequest: ...

    def parse_response(self, cluster: Cluster, request: Body, raw: bytes) -> Completion: ...

    def stream_translator(self, cluster: Cluster, request: Body) -> StreamTranslator: ...

    def classify_error(
        self, cluster: Cluster, status: int, headers: Mapping[str, str], raw: bytes
    ) -> Failure: ...
