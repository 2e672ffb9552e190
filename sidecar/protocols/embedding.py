"""Embeddings, whatever API they come in on and whatever provider answers them.

An ingress front (`EmbeddingFront`: OpenAI `POST /v1/embeddings`, Gemini `embedContent` /
`batchEmbedContents`) reads the caller's body into an `EmbeddingCall`; an upstream `Embedder`
(one per request format of `Cluster.embedding`: `openai`, `gemini`, `titan`, `cohere`) turns that
call into one or more upstream requests for one cluster and their answers into `Embeddings`; the
front answers in the caller's shape. The flow that drives them is `sidecar/serving/embeddings.py`.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.base import AuthMaterial, Failure, UpstreamRequest

#: One input: a text, or a token array (OpenAI-wire providers that take them only).
EmbeddingInput = str | tuple[int, ...]


@dataclass(frozen=True, slots=True)
class EmbeddingCall:
    """One parsed embeddings request.

    `native` is the caller's own OpenAI body (sent on, with the cluster's rules, to OpenAI-wire
    clusters, whose answer then goes back byte for byte); None for callers of another API.
    `task_type` is Gemini's (`RETRIEVAL_QUERY`…), passed to Gemini clusters only."""

    agent_id: str
    inputs: tuple[EmbeddingInput, ...]
    dimensions: int | None = None
    encoding_format: str = "float"
    user: str | None = None
    task_type: str | None = None
    native: Mapping[str, Any] | None = None
    #: The caller asked for one embedding object, not a list (Gemini `embedContent`).
    single: bool = False
    inbound: Mapping[str, str] = field(default_factory=dict)

    @property
    def has_tokens(self) -> bool:
        return any(not isinstance(item, str) for item in self.inputs)

    def texts(self) -> list[str]:
        return [item for item in self.inputs if isinstance(item, str)]


@dataclass(frozen=True, slots=True)
class Embeddings:
    """An answer: one vector per input (in input order), the prompt tokens, and — from an
    OpenAI-wire cluster answering the caller's own OpenAI body — its bytes unchanged (`raw`)."""

    vectors: tuple[Sequence[float], ...]
    prompt_tokens: int
    model: str
    raw: bytes | None = None


@dataclass(frozen=True, slots=True)
class UpstreamAnswer:
    body: bytes
    headers: Mapping[str, str]


class Embedder(Protocol):
    """One request format: the upstream requests for a call at a cluster, and their answers."""

    def requests(
        self, cluster: Cluster, call: EmbeddingCall, auth: AuthMaterial
    ) -> list[UpstreamRequest]: ...

    def parse(self, cluster: Cluster, call: EmbeddingCall, answers: list[UpstreamAnswer]) -> Embeddings: ...


class EmbeddingFront(Protocol):
    """A client API of embeddings: its parse, its answer and its error shape."""

    name: str

    def parse(
        self, body: Any, route: Mapping[str, str], query: Mapping[str, str], headers: Mapping[str, str]
    ) -> EmbeddingCall: ...

    def answer(self, result: Embeddings, call: EmbeddingCall) -> bytes: ...

    def error_body(self, failure: Failure) -> bytes: ...


def as_base64(vector: Sequence[float]) -> str:
    """A vector as OpenAI's `encoding_format: base64` sends it: little-endian float32 bytes."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def bad_input(message: str, param: str = "input", code: str = "invalid_value") -> ClientError:
    return ClientError(400, message, code=code, param=param)


def float_vector(value: Any) -> list[float] | None:
    """`value` when it is a list of numbers, else None."""
    if not isinstance(value, list):
        return None
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in value):
        return None
    return [float(x) for x in value]
