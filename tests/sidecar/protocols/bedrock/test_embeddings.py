"""Bedrock embeddings through InvokeModel: Titan (one call per input) and Cohere (batches of 96),
signed as Converse is, and their answers with token counts from the body or the header."""

from __future__ import annotations

import orjson
import pytest

from astra_sidecar.sidecar.errors import UpstreamError, UpstreamMalformedError
from astra_sidecar.sidecar.protocols.base import AuthMaterial, Secret
from astra_sidecar.sidecar.protocols.bedrock.embeddings import COHERE, TITAN
from astra_sidecar.sidecar.protocols.embedding import EmbeddingCall, UpstreamAnswer
from tests.sidecar.protocols.bedrock.helpers import AUTH, make_cluster

TITAN_CLUSTER = make_cluster(model_id="amazon.titan-embed-text-v2:0", region="us-east-1")
COHERE_CLUSTER = make_cluster(model_id="cohere.embed-english-v3", region="us-east-1")


def test_titan_one_signed_call_per_input() -> None:
    call = EmbeddingCall(agent_id="t", inputs=("a", "b c"), dimensions=512)
    requests = TITAN.requests(TITAN_CLUSTER, call, AUTH)
    assert [r.url for r in requests] == [
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.titan-embed-text-v2%3A0/invoke"
    ] * 2
    assert [orjson.loads(r.body) for r in requests] == [
        {"inputText": "a", "dimensions": 512},
        {"inputText": "b c", "dimensions": 512},
    ]
    assert all(r.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=") for r in requests)


def test_titan_answers_sum_their_token_counts() -> None:
    call = EmbeddingCall(agent_id="t", inputs=("a", "b"))
    answers = [
        UpstreamAnswer(orjson.dumps({"embedding": [float(i)], "inputTextTokenCount": 2 + i}), {})
        for i in range(2)
    ]
    result = TITAN.parse(TITAN_CLUSTER, call, answers)
    assert (result.vectors, result.prompt_tokens) == (([0.0], [1.0]), 5)


def test_cohere_batches_of_96_with_a_bedrock_api_key() -> None:
    texts = tuple(f"t{i}" for i in range(100))
    bearer = AuthMaterial(token=Secret("ABSK-key"))
    requests = COHERE.requests(COHERE_CLUSTER, EmbeddingCall(agent_id="c", inputs=texts), bearer)
    assert [len(orjson.loads(r.body)["texts"]) for r in requests] == [96, 4]
    assert orjson.loads(requests[1].body) == {"texts": list(texts[96:]), "input_type": "search_document"}
    assert requests[0].headers["Authorization"] == "Bearer ABSK-key"


def test_cohere_counts_come_from_the_header_and_typed_answers_are_read() -> None:
    call = EmbeddingCall(agent_id="c", inputs=("a", "b", "c"))
    answers = [
        UpstreamAnswer(
            orjson.dumps({"embeddings": [[1.0], [2.0]]}), {"X-Amzn-Bedrock-Input-Token-Count": "7"}
        ),
        UpstreamAnswer(
            orjson.dumps({"embeddings": {"float": [[3.0]]}}), {"X-Amzn-Bedrock-Input-Token-Count": "2"}
        ),
    ]
    result = COHERE.parse(COHERE_CLUSTER, call, answers)
    assert (result.vectors, result.prompt_tokens) == (([1.0], [2.0], [3.0]), 9)


def test_a_cohere_answer_of_another_length_is_malformed() -> None:
    call = EmbeddingCall(agent_id="c", inputs=("a", "b"))
    with pytest.raises(UpstreamMalformedError):
        COHERE.parse(COHERE_CLUSTER, call, [UpstreamAnswer(orjson.dumps({"embeddings": [[1.0]]}), {})])


def test_no_region_is_a_configuration_error() -> None:
    cluster = make_cluster(model_id="amazon.titan-embed-text-v2:0", region=None, base_url="")
    with pytest.raises(UpstreamError) as caught:
        TITAN.requests(cluster, EmbeddingCall(agent_id="t", inputs=("a",)), AUTH)
    assert caught.value.failure.code == "bedrock_misconfigured"
