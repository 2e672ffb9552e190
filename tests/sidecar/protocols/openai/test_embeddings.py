"""The OpenAI embeddings front (parse, answer, base64) and the OpenAI-wire embedder (the rules of
each cluster, the pass-through answer, malformed answers)."""

from __future__ import annotations

import base64
import struct
from types import MappingProxyType
from typing import Any

import orjson
import pytest

from astra_sidecar.compiler.table import EmbeddingRules
from astra_sidecar.sidecar.errors import ClientError, UpstreamMalformedError
from astra_sidecar.sidecar.protocols.base import AuthMaterial, Secret
from astra_sidecar.sidecar.protocols.embedding import EmbeddingCall, Embeddings, UpstreamAnswer, as_base64
from astra_sidecar.sidecar.protocols.openai.embeddings import EMBEDDER, FRONT, list_body, parse_inputs
from tests.builders import cluster

KEY = AuthMaterial(token=Secret("sk-up"))
MISTRAL_RULES = EmbeddingRules(
    "openai", drop_params=("user",), rename_params=MappingProxyType({"dimensions": "output_dimension"})
)


def _parse(body: Any, agent: str | None = None) -> EmbeddingCall:
    return FRONT.parse(body, {"agent": agent} if agent else {}, {}, {})


def test_every_input_shape_openai_takes() -> None:
    assert parse_inputs("a") == ("a",)
    assert parse_inputs(["a", "b"]) == ("a", "b")
    assert parse_inputs([1, 2]) == ((1, 2),)
    assert parse_inputs([[1], [2, 3]]) == ((1,), (2, 3))


@pytest.mark.parametrize(
    ("value", "message"),
    [("", "input must not be an empty string"), ([], "'input' must be a string, an array of strings, or token arrays"),
     (["a", 3], "input[1] must be a non-empty string or an array of token ids"), ({"a": 1}, "'input' must be a string, an array of strings, or token arrays"),
     ([[-1]], "input[0] must be a non-empty string or an array of token ids")],
)  # fmt: skip
def test_bad_inputs_name_the_item(value: Any, message: str) -> None:
    with pytest.raises(ClientError) as caught:
        parse_inputs(value)
    assert (caught.value.failure.status, caught.value.failure.message, caught.value.failure.param) == (
        400,
        message,
        "input",
    )


def test_the_path_agent_wins_and_the_caller_body_is_kept() -> None:
    call = _parse({"model": "x", "input": "hi", "dimensions": 8, "user": "u", "extra": 1}, agent="vectors")
    assert (call.agent_id, call.dimensions, call.user, call.encoding_format) == ("vectors", 8, "u", "float")
    assert call.native == {"model": "vectors", "input": "hi", "dimensions": 8, "user": "u", "extra": 1}


def test_the_native_body_goes_on_with_the_cluster_rules() -> None:
    call = _parse({"model": "v", "input": ["a"], "dimensions": 8, "user": "u", "encoding_format": "base64"})
    mistral = cluster(
        "openai", "mistral-embed", base_url="https://api.mistral.ai/v1", embedding=MISTRAL_RULES
    )
    [request] = EMBEDDER.requests(mistral, call, KEY)
    assert request.url == "https://api.mistral.ai/v1/embeddings"
    assert request.headers["Authorization"] == "Bearer sk-up"
    assert orjson.loads(request.body) == {
        "model": "mistral-embed", "input": ["a"], "output_dimension": 8, "encoding_format": "base64",
    }  # fmt: skip


def test_a_call_of_another_api_asks_for_floats() -> None:
    call = EmbeddingCall(agent_id="v", inputs=("a", "b"), dimensions=3, task_type="RETRIEVAL_QUERY")
    [request] = EMBEDDER.requests(
        cluster("openai", "text-embedding-3-small", embedding=EmbeddingRules("openai", True)), call, KEY
    )
    assert orjson.loads(request.body) == {
        "model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "float", "dimensions": 3,
    }  # fmt: skip


def _answer(items: list[Any], tokens: int = 4) -> UpstreamAnswer:
    body = {
        "object": "list",
        "data": items,
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return UpstreamAnswer(orjson.dumps(body), {})


def test_a_pass_through_answer_comes_back_unchanged() -> None:
    call = _parse({"model": "v", "input": "a"})
    answer = _answer([{"object": "embedding", "index": 0, "embedding": "AAAAAA=="}])
    result = EMBEDDER.parse(cluster(), call, [answer])
    assert (result.raw, result.prompt_tokens) == (answer.body, 4)
    assert FRONT.answer(result, call) == answer.body


def test_a_translated_answer_is_read_in_index_order() -> None:
    call = EmbeddingCall(agent_id="v", inputs=("a", "b"))
    items = [
        {"object": "embedding", "index": 1, "embedding": [2.0]},
        {"object": "embedding", "index": 0, "embedding": [1.0]},
    ]
    result = EMBEDDER.parse(cluster(), call, [_answer(items)])
    assert result.vectors == ([1.0], [2.0])


@pytest.mark.parametrize(
    "raw",
    [b"not json", b'{"data": "x"}', orjson.dumps({"data": [{"index": 0, "embedding": [1.0]}]}),
     orjson.dumps({"data": [{"index": 0, "embedding": ["x"]}, {"index": 1, "embedding": [1]}]})],
)  # fmt: skip
def test_malformed_answers_are_upstream_failures(raw: bytes) -> None:
    call = EmbeddingCall(agent_id="v", inputs=("a", "b"))
    with pytest.raises(UpstreamMalformedError):
        EMBEDDER.parse(cluster(), call, [UpstreamAnswer(raw, {})])


def test_base64_is_little_endian_float32() -> None:
    encoded = as_base64([1.0, -0.5])
    assert struct.unpack("<2f", base64.b64decode(encoded)) == (1.0, -0.5)
    body = orjson.loads(list_body(Embeddings(([1.0, -0.5],), 3, "m"), "base64"))
    assert body == {
        "object": "list", "data": [{"object": "embedding", "index": 0, "embedding": encoded}], "model": "m",
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }  # fmt: skip
