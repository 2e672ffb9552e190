"""OpenAI embeddings (https://platform.openai.com/docs/api-reference/embeddings), both ways.

- **Ingress** (`FRONT`): `POST /v1/embeddings`, `model` = an agent id (the path's agent on the
  provider-style prefixes). `input` is a string, a list of strings, a token array or a list of
  token arrays; `dimensions`, `encoding_format` (`float` | `base64`) and `user` are read. The answer
  is OpenAI's list object, `usage` with `prompt_tokens` and `total_tokens`; `base64` vectors are
  little-endian float32, encoded here when the provider sent floats.
- **Upstream** (`EMBEDDER`, request format `openai`: openai, mistral, ollama, openrouter, vllm):
  `POST {base}/embeddings`. The caller's own OpenAI body is sent on (model replaced, the
  cluster's `embedding` rules applied: fields dropped or renamed), and its answer goes back byte
  for byte once checked; a call from another API is sent as floats and read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.errors import UpstreamMalformedError
from astra_sidecar.sidecar.protocols.base import AuthMaterial, Failure, UpstreamRequest
from astra_sidecar.sidecar.protocols.embedding import (
    EmbeddingCall,
    EmbeddingInput,
    Embeddings,
    UpstreamAnswer,
    as_base64,
    bad_input,
    float_vector,
)
from astra_sidecar.sidecar.protocols.openai.adapter import auth_headers
from astra_sidecar.sidecar.protocols.openai.ingress import error_payload

#: The request fields read here; any other field is sent on to OpenAI-wire clusters only.
KNOWN_FIELDS = frozenset({"model", "input", "dimensions", "encoding_format", "user"})
ENCODINGS = ("float", "base64")


def _is_tokens(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(type(t) is int and t >= 0 for t in value)


def _one_input(value: Any, where: str) -> EmbeddingInput:
    if isinstance(value, str):
        if not value:
            raise bad_input(f"{where} must not be an empty string")
        return value
    if _is_tokens(value):
        return tuple(value)
    raise bad_input(f"{where} must be a non-empty string or an array of token ids")


def parse_inputs(value: Any) -> tuple[EmbeddingInput, ...]:
    """`input` as OpenAI takes it: a string, a token array, or a list of either."""
    if isinstance(value, str) or _is_tokens(value):
        return (_one_input(value, "input"),)
    if not isinstance(value, list) or not value:
        raise bad_input("'input' must be a string, an array of strings, or token arrays")
    return tuple(_one_input(item, f"input[{i}]") for i, item in enumerate(value))


def _dimensions(value: Any) -> int | None:
    if value is None:
        return None
    if type(value) is not int or value < 1:
        raise bad_input("'dimensions' must be a positive integer", "dimensions")
    return value


def _encoding(value: Any) -> str:
    if value is None:
        return "float"
    if value not in ENCODINGS:
        raise bad_input("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    return str(value)


class OpenAIEmbeddingFront:
    name = "openai"

    def parse(
        self, body: Any, route: Mapping[str, str], query: Mapping[str, str], headers: Mapping[str, str]
    ) -> EmbeddingCall:
        if not isinstance(body, dict):
            raise bad_input("the request body must be a JSON object", param="")
        agent = route.get("agent") or body.get("model")
        if not isinstance(agent, str) or not agent:
            raise bad_input("'model' must name an agent", "model")
        if "input" not in body:
            raise bad_input("'input' is required", code="missing_required_parameter")
        user = body.get("user")
        if user is not None and not isinstance(user, str):
            raise bad_input("'user' must be a string", "user")
        return EmbeddingCall(
            agent_id=agent,
            inputs=parse_inputs(body["input"]),
            dimensions=_dimensions(body.get("dimensions")),
            encoding_format=_encoding(body.get("encoding_format")),
            user=user,
            native={**body, "model": agent},
            inbound=headers,
        )

    def answer(self, result: Embeddings, call: EmbeddingCall) -> bytes:
        if result.raw is not None:
            return result.raw
        return list_body(result, call.encoding_format)

    def error_body(self, failure: Failure) -> bytes:
        return error_payload(failure)


def list_body(result: Embeddings, encoding: str) -> bytes:
    """OpenAI's embeddings list object for `result`."""
    encode = as_base64 if encoding == "base64" else list
    data = [
        {"object": "embedding", "index": index, "embedding": encode(vector)}
        for index, vector in enumerate(result.vectors)
    ]
    usage = {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}
    return orjson.dumps({"object": "list", "data": data, "model": result.model, "usage": usage})


def _upstream_body(cluster: Cluster, call: EmbeddingCall) -> dict[str, Any]:
    if call.native is not None:
        body = {**call.native, "model": cluster.model_id}
    else:
        inputs = [list(i) if isinstance(i, tuple) else i for i in call.inputs]
        body = {"model": cluster.model_id, "input": inputs, "encoding_format": "float"}
        if call.dimensions is not None:
            body["dimensions"] = call.dimensions
    rules = cluster.embedding
    if rules is None:
        return body
    out = {k: v for k, v in body.items() if k not in rules.drop_params}
    return {rules.rename_params.get(k, k): v for k, v in out.items()}


class OpenAIEmbedder:
    """`POST {base}/embeddings` on an OpenAI-compatible cluster."""

    def requests(self, cluster: Cluster, call: EmbeddingCall, auth: AuthMaterial) -> list[UpstreamRequest]:
        headers = {"Content-Type": "application/json", **cluster.headers, **auth_headers(cluster, auth)}
        body = orjson.dumps(_upstream_body(cluster, call))
        return [
            UpstreamRequest(url=cluster.base_url + "/embeddings", headers=headers, body=body, stream=False)
        ]

    def parse(self, cluster: Cluster, call: EmbeddingCall, answers: list[UpstreamAnswer]) -> Embeddings:
        raw = answers[0].body
        try:
            data = orjson.loads(raw)
            items = sorted(data["data"], key=lambda item: item["index"])
            usage = data.get("usage") or {}
            tokens = usage.get("prompt_tokens", 0)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise UpstreamMalformedError("not an embeddings list", cluster.key, cluster.provider) from exc
        if len(items) != len(call.inputs) or not isinstance(tokens, int):
            raise UpstreamMalformedError(
                "an embeddings list of another length", cluster.key, cluster.provider
            )
        model = data.get("model") if isinstance(data.get("model"), str) else cluster.model_id
        if call.native is not None:
            return Embeddings((), tokens, model, raw=raw)
        vectors = [float_vector(item.get("embedding")) for item in items]
        if any(v is None for v in vectors):
            raise UpstreamMalformedError(
                "an embedding that is not a list of numbers", cluster.key, cluster.provider
            )
        return Embeddings(tuple(v for v in vectors if v is not None), tokens, model)


FRONT = OpenAIEmbeddingFront()
EMBEDDER = OpenAIEmbedder()
