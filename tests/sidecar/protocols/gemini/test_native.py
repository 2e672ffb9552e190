"""`NATIVE`, the pass-through to Gemini clusters: the upstream request, `validate` for whole
answers and `watch` for streams, which must judge a stream exactly as the stream translator does.

Payloads are shaped like the examples of Google's reference
(https://ai.google.dev/api/generate-content: `GenerateContentResponse`, streamed as
`data: …` events by `streamGenerateContent?alt=sse`) and the fake upstream's builders.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from astra_sidecar.compiler.table import VertexTarget
from astra_sidecar.sidecar.errors import UpstreamMalformedError, UpstreamStatusError, UpstreamStreamError
from astra_sidecar.sidecar.protocols.base import AuthMaterial, Secret, Usage
from astra_sidecar.sidecar.protocols.codec import IngressCall
from astra_sidecar.sidecar.protocols.gemini.errors import failure_from_error
from astra_sidecar.sidecar.protocols.gemini.native import NATIVE
from astra_sidecar.sidecar.protocols.gemini.policy_access import ACCESS
from astra_sidecar.sidecar.protocols.gemini.stream import GeminiStreamTranslator
from tests.fakes.gemini_upstream import (
    blocked_prompt_response,
    candidate,
    encode_events,
    google_error,
    response,
    text_response,
    text_stream,
    usage_metadata,
)
from tests.sidecar.protocols.gemini.helpers import ADAPTER, AI_STUDIO, MODEL, make_cluster

Json = dict[str, Any]
KEY = AuthMaterial(token=Secret("g-key"))
BODY: Json = {"contents": [{"role": "user", "parts": [{"text": "Tell me a story."}]}], "cachedContent": "c/1"}

#: Two events as Google's streamGenerateContent example sends them (usage on each, the last wins).
STORY = [
    b'data: {"candidates": [{"content": {"parts": [{"text": "Once upon"}], "role": "model"}, "index": 0}],'
    b' "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}, "modelVersion": "gemini-2.0-flash"}'
    b"\r\n\r\n",
    b'data: {"candidates": [{"content": {"parts": [{"text": " a time..."}], "role": "model"},'
    b' "finishReason": "STOP", "index": 0}], "usageMetadata": {"promptTokenCount": 8,'
    b' "candidatesTokenCount": 12, "totalTokenCount": 20}, "modelVersion": "gemini-2.0-flash"}\r\n\r\n',
]


def call(stream: bool) -> IngressCall:
    return IngressCall(agent_id="native", body=BODY, stream=stream)


def test_native_path_uses_the_gemini_accessors() -> None:
    assert NATIVE.access is ACCESS


# --- the upstream request -------------------------------------------------------------------------


def test_request_goes_to_the_clusters_url_with_the_body_as_it_is() -> None:
    plain = NATIVE.request(AI_STUDIO, BODY, KEY, call(stream=False))
    assert plain.url == f"https://generativelanguage.googleapis.com/v1beta/models/{MODEL}:generateContent"
    assert dict(plain.headers) == {"Content-Type": "application/json", "x-goog-api-key": "g-key"}
    assert (plain.stream, plain.method, orjson.loads(plain.body)) == (False, "POST", BODY)
    streamed = NATIVE.request(AI_STUDIO, BODY, KEY, call(stream=True))
    assert streamed.url.endswith(f"/models/{MODEL}:streamGenerateContent?alt=sse")
    assert (streamed.stream, streamed.headers["Accept"]) == (True, "text/event-stream")


def test_request_to_vertex_uses_its_url_and_a_bearer_token() -> None:
    vertex = make_cluster(vertex=VertexTarget(project="proj-1", location="global"))
    request = NATIVE.request(vertex, BODY, KEY, call(stream=False))
    assert request.url == (
        "https://aiplatform.googleapis.com/v1/projects/proj-1/locations/global/publishers/google/"
        f"models/{MODEL}:generateContent"
    )
    assert request.headers["Authorization"] == "Bearer g-key"
    assert "x-goog-api-key" not in request.headers


# --- whole answers --------------------------------------------------------------------------------


def test_validate_returns_the_usage_of_an_answer() -> None:
    raw = orjson.dumps(text_response("Hi", usage=usage_metadata(12, 4, cached=8, thoughts=5, tool_use=2)))
    assert NATIVE.validate(AI_STUDIO, raw) == Usage(
        prompt_tokens=14, completion_tokens=9, cached_tokens=8, reasoning_tokens=5
    )
    wrapped = orjson.dumps([text_response("Hi", usage=usage_metadata(3, 1))])
    assert NATIVE.validate(AI_STUDIO, wrapped) == Usage(prompt_tokens=3, completion_tokens=1)


@pytest.mark.parametrize("answer", [text_response("Hi"), blocked_prompt_response(), {}])
def test_validate_accepts_answers_without_usage(answer: Json) -> None:
    assert NATIVE.validate(AI_STUDIO, orjson.dumps(answer)) is None


@pytest.mark.parametrize("wrapped", [False, True])
def test_an_error_inside_a_200_is_that_error(wrapped: bool) -> None:
    error = google_error(429, "RESOURCE_EXHAUSTED", "quota", retry_delay="7s", wrapped=wrapped)
    raw = orjson.dumps(error)
    with pytest.raises(UpstreamStatusError) as caught:
        NATIVE.validate(AI_STUDIO, raw)
    inner = error[0]["error"] if wrapped else error["error"]
    assert caught.value.failure == failure_from_error(200, inner, {})
    assert caught.value.cluster == AI_STUDIO.key
    with pytest.raises(UpstreamStatusError) as translated:
        ADAPTER.parse_response(AI_STUDIO, {"messages": []}, raw)
    assert caught.value.failure == translated.value.failure


@pytest.mark.parametrize("raw", [b"<html>502</html>", b"", b"[]", b"[{}, {}]", b'"text"', b"42", b"null"])
def test_anything_but_a_response_object_is_malformed(raw: bytes) -> None:
    with pytest.raises(UpstreamMalformedError) as caught:
        NATIVE.validate(AI_STUDIO, raw)
    assert (caught.value.failure.status, caught.value.failure.code) == (502, "upstream_malformed")
    assert caught.value.cluster == AI_STUDIO.key
    with pytest.raises(UpstreamMalformedError) as translated:
        ADAPTER.parse_response(AI_STUDIO, {"messages": []}, raw)
    assert caught.value.failure == translated.value.failure


# --- streams --------------------------------------------------------------------------------------


def test_watch_says_when_the_first_whole_event_has_arrived() -> None:
    watch = NATIVE.watch(AI_STUDIO)
    first = STORY[0]
    assert watch.feed(first[:40]) is False
    assert watch.feed(first[40:-2]) is False
    assert watch.feed(first[-2:]) is True
    assert watch.feed(STORY[1][:10]) is True
    assert watch.feed(STORY[1][10:]) is True
    assert watch.usage is None  # published at the end, as the translator does
    watch.finish()
    assert watch.usage == Usage(prompt_tokens=8, completion_tokens=12)


def test_watch_fed_byte_by_byte() -> None:
    watch = NATIVE.watch(AI_STUDIO)
    data = b"".join(STORY)
    for i in range(len(data)):
        watch.feed(data[i : i + 1])
    watch.finish()
    assert watch.usage == Usage(prompt_tokens=8, completion_tokens=12)


def judge(events: list[Any], judge_with: str) -> tuple[str, Any]:
    """What a watch or a translator makes of a whole stream: ("ok", usage) or ("error", failure)."""
    if judge_with == "watch":
        reader: Any = NATIVE.watch(AI_STUDIO)
    else:
        reader = GeminiStreamTranslator(MODEL, include_usage=True, cluster_key=AI_STUDIO.key)
    try:
        reader.feed(encode_events(events))
        reader.finish()
    except UpstreamStreamError as exc:
        assert exc.cluster == AI_STUDIO.key
        return "error", exc.failure
    return "ok", reader.usage


STREAMS: dict[str, list[Any]] = {
    "text": text_stream(["Hel", "lo"], usage=usage_metadata(9, 3)),
    "no usage": text_stream(["Hi"]),
    "blocked prompt": [blocked_prompt_response(usage=usage_metadata(5, 0))],
    "finish in a later chunk": [
        response([candidate([{"text": "A"}], None)]),
        response([candidate([], "MAX_TOKENS")], usage=usage_metadata(2, 1)),
    ],
    "two candidates": [
        response([candidate([{"text": "A"}], None, 0), candidate([{"text": "B"}], "STOP", 1)]),
        response([candidate([], "STOP", 0)], usage=usage_metadata(4, 2)),
    ],
    "empty": [],
    "usage only": [{"usageMetadata": usage_metadata(1, 0)}],
    "partial": [response([candidate([{"text": "partial"}], None)], usage=usage_metadata(1, 1))],
    "one candidate unfinished": [
        response([candidate([{"text": "A"}], "STOP", 0), candidate([{"text": "B"}], None, 1)]),
    ],
    "not an object": [[], response([candidate([{"text": "A"}])])],
    "last event without its blank line": [
        response([candidate([{"text": "A"}], None)]),
        b'data: {"candidates": [{"content": {"parts": []}, "finishReason": "STOP"}]}',
    ],
    "error mid-stream": [
        response([candidate([{"text": "Hi"}], None)]),
        google_error(429, "RESOURCE_EXHAUSTED", "slow down", retry_delay="2s", wrapped=True),
    ],
    "error first": [google_error(503, "UNAVAILABLE", "overloaded")],
    "not JSON": [response([candidate([{"text": "Hi"}], None)]), b"data: {not json\n\n"],
}


@pytest.mark.parametrize("name", list(STREAMS))
def test_watch_judges_every_stream_as_the_translator_does(name: str) -> None:
    assert judge(STREAMS[name], "watch") == judge(STREAMS[name], "translator")


def test_complete_cut_and_failed_streams() -> None:
    assert judge(STREAMS["text"], "watch") == ("ok", Usage(prompt_tokens=9, completion_tokens=3))
    assert judge(STREAMS["blocked prompt"], "watch") == ("ok", Usage(prompt_tokens=5))
    outcome, failure = judge(STREAMS["partial"], "watch")
    assert (outcome, failure.status, failure.message) == (
        "error",
        502,
        "gemini stream ended before a finishReason",
    )
    outcome, failure = judge(STREAMS["error mid-stream"], "watch")
    assert (outcome, failure.status, failure.code, failure.retry_after_s) == (
        "error",
        429,
        "RESOURCE_EXHAUSTED",
        2.0,
    )
    outcome, failure = judge(STREAMS["not JSON"], "watch")
    assert (outcome, failure.message) == ("error", "gemini sent a malformed stream chunk")


def test_an_error_event_raises_as_it_arrives() -> None:
    watch = NATIVE.watch(AI_STUDIO)
    assert watch.feed(encode_events([response([candidate([{"text": "Hi"}], None)])])) is True
    with pytest.raises(UpstreamStreamError):
        watch.feed(encode_events([google_error(500, "INTERNAL", "boom")]))
