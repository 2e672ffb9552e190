"""Gemini embeddings: the upstream requests (AI Studio batchEmbedContents, Vertex AI predict) and
their answers, and the embedContent / batchEmbedContents ingress front."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from astra_sidecar.compiler.table import VertexTarget
from astra_sidecar.sidecar.errors import ClientError, UpstreamMalformedError
from astra_sidecar.sidecar.protocols.embedding import EmbeddingCall, Embeddings, UpstreamAnswer
from astra_sidecar.sidecar.protocols.gemini.embeddings import EMBEDDER
from astra_sidecar.sidecar.protocols.gemini.embeddings_ingress import FRONT
from tests.fakes.gemini_upstream import embed_answer
from tests.sidecar.protocols.gemini.helpers import KEY, make_cluster

STUDIO = make_cluster(model="gemini-embedding-001")
VERTEX = make_cluster(
    model="text-embedding-005", vertex=VertexTarget(project="proj-1", location="europe-west4")
)
CALL = EmbeddingCall(agent_id="v", inputs=("one", "three"), dimensions=2, task_type="RETRIEVAL_DOCUMENT")


def test_ai_studio_batch_request() -> None:
    [request] = EMBEDDER.requests(STUDIO, CALL, KEY)
    assert (
        request.url
        == "https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001:batchEmbedContents"
    )
    assert request.headers["x-goog-api-key"] == "g-key"
    entry = {
        "model": "models/gemini-embedding-001",
        "outputDimensionality": 2,
        "taskType": "RETRIEVAL_DOCUMENT",
    }
    assert orjson.loads(request.body) == {
        "requests": [{**entry, "content": {"parts": [{"text": t}]}} for t in ("one", "three")]
    }


def test_vertex_predict_request_and_its_token_counts() -> None:
    [request] = EMBEDDER.requests(VERTEX, CALL, KEY)
    assert request.url == (
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/proj-1/locations/europe-west4"
        "/publishers/google/models/text-embedding-005:predict"
    )
    assert request.headers["Authorization"] == "Bearer g-key"
    body = orjson.loads(request.body)
    assert body == {
        "instances": [{"content": "one", "task_type": "RETRIEVAL_DOCUMENT"}, {"content": "three", "task_type": "RETRIEVAL_DOCUMENT"}],
        "parameters": {"outputDimensionality": 2},
    }  # fmt: skip
    answer = UpstreamAnswer(orjson.dumps(embed_answer("text-embedding-005", "predict", body)), {})
    result = EMBEDDER.parse(VERTEX, CALL, [answer])
    assert (result.vectors, result.prompt_tokens) == (([0.375, 0.5], [0.625, 0.75]), 2)


def test_ai_studio_answers_have_no_counts_so_usage_is_the_estimate() -> None:
    body = orjson.loads(EMBEDDER.requests(STUDIO, CALL, KEY)[0].body)
    answer = UpstreamAnswer(
        orjson.dumps(embed_answer("gemini-embedding-001", "batchEmbedContents", body)), {}
    )
    result = EMBEDDER.parse(STUDIO, CALL, [answer])
    assert result.prompt_tokens == 3 and result.model == "gemini-embedding-001"


@pytest.mark.parametrize(
    "data",
    [
        {"embeddings": [{"values": [1.0]}]},
        {"embeddings": [{"values": [1.0]}, {"nope": 1}]},
        {"candidates": []},
        [1],
    ],
)
def test_malformed_answers(data: Any) -> None:
    with pytest.raises(UpstreamMalformedError):
        EMBEDDER.parse(STUDIO, CALL, [UpstreamAnswer(orjson.dumps(data), {})])


def _front(body: Any, method: str) -> EmbeddingCall:
    return FRONT.parse(body, {"agent": "v", "method": method}, {"key": "client"}, {})


def test_embed_content_with_snake_case_fields() -> None:
    call = _front(
        {
            "content": {"parts": [{"text": "a"}, {"text": "b"}]},
            "task_type": "CLUSTERING",
            "output_dimensionality": 4,
        },
        "embedContent",
    )
    assert (call.inputs, call.task_type, call.dimensions, call.single) == (("a\nb",), "CLUSTERING", 4, True)
    assert call.inbound["x-goog-api-key"] == "client"
    assert orjson.loads(FRONT.answer(Embeddings(([1.0],), 1, "m"), call)) == {"embedding": {"values": [1.0]}}


def test_batch_embed_contents_answers_a_list() -> None:
    request = {"model": "models/x", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 2}
    call = _front(
        {"requests": [request, {**request, "content": {"parts": [{"text": "b"}]}}]}, "batchEmbedContents"
    )
    assert (call.inputs, call.dimensions, call.single) == (("a", "b"), 2, False)
    answer = FRONT.answer(Embeddings(([1.0], [2.0]), 1, "m"), call)
    assert orjson.loads(answer) == {"embeddings": [{"values": [1.0]}, {"values": [2.0]}]}


@pytest.mark.parametrize(
    ("body", "method", "param"),
    [({"content": {"parts": []}}, "embedContent", "content.parts"),
     ({"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 0}, "embedContent", "outputDimensionality"),
     ({"requests": []}, "batchEmbedContents", "requests"),
     ({"requests": [{"content": {"parts": [{"text": "a"}]}, "taskType": "A"},
                    {"content": {"parts": [{"text": "b"}]}, "taskType": "B"}]}, "batchEmbedContents", "requests"),
     ({"requests": [{"content": {"parts": [{"text": "a"}]}}, {"content": {}}]}, "batchEmbedContents",
      "requests[1].content.parts")],
)  # fmt: skip
def test_bad_bodies_name_the_field(body: Any, method: str, param: str) -> None:
    with pytest.raises(ClientError) as caught:
        _front(body, method)
    assert (caught.value.failure.status, caught.value.failure.param) == (400, param)
