"""The Gemini adapter's requests, pure: URLs and auth headers (AI Studio and Vertex), messages
and generation settings, images and other media.
"""

from __future__ import annotations

import pytest

from astra_sidecar.compiler.table import (
    VertexTarget,
)
from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.base import AuthMaterial
from astra_sidecar.sidecar.protocols.gemini.request import AI_STUDIO_BASE_URL
from tests.sidecar.protocols.gemini.helpers import (
    ADAPTER,
    AI_STUDIO,
    KEY,
    MODEL,
    Json,
    chat,
    make_agent,
    make_cluster,
    translate,
    user,
)

# --- request: URLs and headers ----------------------------------------------------------------


def test_ai_studio_plain_url_and_key_header() -> None:
    request = ADAPTER.build_request(AI_STUDIO, make_agent(), chat([user("hi")]), KEY)
    assert request.url == f"{AI_STUDIO_BASE_URL}/v1beta/models/{MODEL}:generateContent"
    assert dict(request.headers) == {"Content-Type": "application/json", "x-goog-api-key": "g-key"}
    assert request.stream is False
    assert request.method == "POST"


def test_ai_studio_stream_url_uses_alt_sse() -> None:
    request = ADAPTER.build_request(AI_STUDIO, make_agent(), chat([user("hi")], stream=True), KEY)
    assert request.url == f"{AI_STUDIO_BASE_URL}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
    assert request.headers["Accept"] == "text/event-stream"
    assert request.stream is True


def test_models_prefix_is_stripped_and_extra_headers_kept() -> None:
    cluster = make_cluster(model="models/gemini-2.0-flash", headers={"x-extra": "1"})
    request = ADAPTER.build_request(cluster, make_agent(), chat([user("hi")]), KEY)
    assert request.url == f"{AI_STUDIO_BASE_URL}/v1beta/models/gemini-2.0-flash:generateContent"
    assert request.headers["x-extra"] == "1"


def test_missing_auth_sends_no_auth_header() -> None:
    request = ADAPTER.build_request(AI_STUDIO, make_agent(), chat([user("hi")]), AuthMaterial())
    assert dict(request.headers) == {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("location", "host"),
    [
        ("europe-west4", "https://europe-west4-aiplatform.googleapis.com"),
        ("global", "https://aiplatform.googleapis.com"),
        ("us", "https://aiplatform.us.rep.googleapis.com"),
    ],
)
def test_vertex_url_and_bearer(location: str, host: str) -> None:
    cluster = make_cluster(vertex=VertexTarget(project="proj-1", location=location))
    request = ADAPTER.build_request(cluster, make_agent(), chat([user("hi")], stream=True), KEY)
    assert request.url == (
        f"{host}/v1/projects/proj-1/locations/{location}/publishers/google/models/{MODEL}"
        ":streamGenerateContent?alt=sse"
    )
    assert request.headers["Authorization"] == "Bearer g-key"
    assert "x-goog-api-key" not in request.headers


def test_vertex_custom_base_url_replaces_host() -> None:
    cluster = make_cluster(
        vertex=VertexTarget(project="p", location="us-central1"), base_url="http://127.0.0.1:9999/"
    )
    request = ADAPTER.build_request(cluster, make_agent(), chat([user("hi")]), KEY)
    assert request.url == (
        "http://127.0.0.1:9999/v1/projects/p/locations/us-central1/publishers/google/models/"
        f"{MODEL}:generateContent"
    )


# --- request: messages ------------------------------------------------------------------------


def test_roles_system_instruction_and_merged_turns() -> None:
    body = chat(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            user("Hello"),
            {"role": "user", "content": [{"type": "text", "text": "there"}]},
            {"role": "assistant", "content": "Bonjour"},
            {"role": "assistant", "content": None},
            user(""),
            user("Again"),
        ]
    )
    assert translate(body) == {
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Answer in French."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Hello"}, {"text": "there"}]},
            {"role": "model", "parts": [{"text": "Bonjour"}]},
            {"role": "user", "parts": [{"text": "Again"}]},
        ],
    }


def test_generation_config_maps_every_parameter() -> None:
    body = chat(
        [user("hi")],
        max_completion_tokens=300,
        max_tokens=999,
        temperature=1.4,
        top_p=0.9,
        stop="END",
        n=2,
        seed=42,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        user="someone",
        logit_bias={"1": 2},
        stream_options={"include_usage": True},
    )
    assert translate(body)["generationConfig"] == {
        "maxOutputTokens": 300,
        "temperature": 1.4,
        "topP": 0.9,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "seed": 42,
        "presencePenalty": 0.5,
        "frequencyPenalty": -0.5,
    }


def test_max_tokens_falls_back_to_legacy_field_then_agent() -> None:
    legacy = translate(chat([user("hi")], max_tokens=64, stop=["a", "b"]))["generationConfig"]
    assert legacy == {"maxOutputTokens": 64, "stopSequences": ["a", "b"]}
    from_agent = translate(chat([user("hi")]), agent=make_agent(max_output_tokens=128))
    assert from_agent["generationConfig"] == {"maxOutputTokens": 128}
    assert "generationConfig" not in translate(chat([user("hi")], n=1))


def test_json_object_mode() -> None:
    body = chat([user("hi")], response_format={"type": "json_object"})
    assert translate(body)["generationConfig"] == {"responseMimeType": "application/json"}


def test_json_schema_mode_sends_full_json_schema() -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    body = chat(
        [user("hi")],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "a", "schema": schema, "strict": True},
        },
    )
    assert translate(body)["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }
    assert "generationConfig" not in translate(chat([user("hi")], response_format={"type": "text"}))


# --- request: images and other media ------------------------------------------------------------


def test_images_data_url_inline_and_remote_url_as_file_data() -> None:
    body = chat(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/cat.WEBP?x=1", "detail": "low"},
                    },
                    {"type": "image_url", "image_url": {"url": "https://example.com/render"}},
                    {"type": "image_url", "image_url": {"url": "gs://bucket/doc.pdf"}},
                    {"type": "image_url", "image_url": {"url": "data:text/plain,hi%20there"}},
                ],
            }
        ]
    )
    assert translate(body)["contents"][0]["parts"] == [
        {"text": "Compare"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.WEBP?x=1"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/render"}},
        {"fileData": {"mimeType": "application/pdf", "fileUri": "gs://bucket/doc.pdf"}},
        {"inlineData": {"mimeType": "text/plain", "data": "aGkgdGhlcmU="}},
    ]


def test_audio_and_inline_files() -> None:
    body = chat(
        [
            {
                "role": "user",
                "content": [
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                    {
                        "type": "file",
                        "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
                    },
                    {"type": "file", "file": {"file_data": "JVBERi0=", "filename": "b.pdf"}},
                ],
            }
        ]
    )
    assert translate(body)["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
    ]


@pytest.mark.parametrize(
    "part",
    [
        {"type": "file", "file": {"file_id": "file-123"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64"}},
        {"type": "video_url", "video_url": {"url": "x"}},
    ],
)
def test_untranslatable_parts_are_client_errors(part: Json) -> None:
    with pytest.raises(ClientError) as caught:
        translate(chat([{"role": "user", "content": [part]}]))
    assert caught.value.status == 400
    assert caught.value.failure.retryable is False
    assert caught.value.failure.param == "messages[0].content[0]"
