"""The Bedrock adapter's request envelope: URL and model-id encoding, region, headers, SigV4 and
bearer-key signing (the signature recomputed by botocore)."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import orjson
import pytest
import yarl
from botocore.credentials import ReadOnlyCredentials

from astra_sidecar.sidecar.errors import UpstreamError
from astra_sidecar.sidecar.protocols.base import AuthMaterial, AwsCredentials, Secret
from tests.fakes import bedrock_upstream as fake
from tests.sidecar.protocols.bedrock.helpers import (
    ADAPTER,
    AGENT,
    AUTH,
    AWS,
    CLUSTER,
    ENCODED_MODEL,
    MODEL,
    chat,
    make_cluster,
    user,
)


def test_plain_request_url_headers_and_body() -> None:
    body = chat({"role": "system", "content": "Be brief."}, user("Hi"), max_tokens=50)
    request = ADAPTER.build_request(CLUSTER, AGENT, body, AUTH)
    assert request.url == f"https://bedrock-runtime.us-east-1.amazonaws.com/model/{ENCODED_MODEL}/converse"
    assert request.stream is False
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={fake.TEST_ACCESS_KEY}/")
    assert (
        "/us-east-1/bedrock/aws4_request, SignedHeaders=accept;content-type;host;x-amz-date,"
        in (request.headers["Authorization"])
    )
    assert "X-Amz-Security-Token" not in request.headers
    assert orjson.loads(request.body) == {
        "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 50},
    }


def test_stream_request_uses_converse_stream_and_event_stream_accept() -> None:
    request = ADAPTER.build_request(CLUSTER, AGENT, chat(user("Hi"), stream=True), AUTH)
    assert request.url.endswith(f"/model/{ENCODED_MODEL}/converse-stream")
    assert request.stream is True
    assert request.headers["Accept"] == "application/vnd.amazon.eventstream"
    assert fake.validation_errors("ConverseStream", MODEL, orjson.loads(request.body)) is None


@pytest.mark.parametrize(
    ("model_id", "encoded"),
    [
        ("us.anthropic.claude-3-5-sonnet-20241022-v2:0", "us.anthropic.claude-3-5-sonnet-20241022-v2%3A0"),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-2-1b-instruct-v1:0",
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.meta.llama3-2-1b-instruct-v1%3A0",
        ),
        ("amazon.nova-lite-v1:0", "amazon.nova-lite-v1%3A0"),
    ],
)
def test_model_id_is_percent_encoded_in_the_path(model_id: str, encoded: str) -> None:
    request = ADAPTER.build_request(make_cluster(model_id=model_id), AGENT, chat(user("x")), AUTH)
    assert request.url == f"https://bedrock-runtime.us-east-1.amazonaws.com/model/{encoded}/converse"


def test_empty_base_url_means_the_regional_endpoint() -> None:
    cluster = make_cluster(base_url="", region="eu-west-3")
    request = ADAPTER.build_request(cluster, AGENT, chat(user("x")), AUTH)
    assert request.url == f"https://bedrock-runtime.eu-west-3.amazonaws.com/model/{ENCODED_MODEL}/converse"
    assert "/eu-west-3/bedrock/aws4_request" in request.headers["Authorization"]


def test_region_is_read_from_a_regional_base_url() -> None:
    cluster = make_cluster(base_url="https://bedrock-runtime-fips.us-west-2.amazonaws.com", region=None)
    request = ADAPTER.build_request(cluster, AGENT, chat(user("x")), AUTH)
    assert "/us-west-2/bedrock/aws4_request" in request.headers["Authorization"]


def test_missing_region_is_a_configuration_failure() -> None:
    cluster = make_cluster(base_url="", region=None)
    with pytest.raises(UpstreamError) as raised:
        ADAPTER.build_request(cluster, AGENT, chat(user("x")), AUTH)
    assert raised.value.cluster == cluster.key
    assert raised.value.failure.status == 500
    assert raised.value.failure.code == "bedrock_misconfigured"
    with pytest.raises(UpstreamError):
        ADAPTER.build_request(
            make_cluster(base_url="http://127.0.0.1:1", region=None), AGENT, chat(user("x")), AUTH
        )


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def test_signature_recomputed_independently_by_botocore_matches() -> None:
    request = ADAPTER.build_request(CLUSTER, AGENT, chat(user("Hi")), AUTH)
    headers = _lower(request.headers)
    headers["host"] = "bedrock-runtime.us-east-1.amazonaws.com"
    authorization = fake._auth_parts(headers["authorization"])
    url = yarl.URL(request.url, encoded=True)
    canonical, signature = fake.recompute_signature(
        headers,
        url.raw_path,
        request.body,
        authorization["SignedHeaders"].split(";"),
        ReadOnlyCredentials(fake.TEST_ACCESS_KEY, fake.TEST_SECRET_KEY, None),
        "us-east-1",
        "bedrock",
        scheme="https",
    )
    assert signature == authorization["Signature"]
    # The already-encoded model id is encoded again in the canonical request.
    assert canonical.splitlines()[1] == "/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse"


def test_session_token_is_sent_and_signed() -> None:
    creds = AwsCredentials("ASIAFAKE", Secret("secret"), Secret("session-token"))
    request = ADAPTER.build_request(CLUSTER, AGENT, chat(user("Hi")), AuthMaterial(aws=creds))
    assert request.headers["X-Amz-Security-Token"] == "session-token"
    assert "x-amz-security-token" in request.headers["Authorization"].split("SignedHeaders=")[1]


def test_bedrock_api_key_is_sent_as_bearer_and_wins_over_sigv4() -> None:
    auth = AuthMaterial(token=Secret("ABSK-key"), aws=AWS)
    request = ADAPTER.build_request(CLUSTER, AGENT, chat(user("Hi")), auth)
    assert request.headers["Authorization"] == "Bearer ABSK-key"
    assert "X-Amz-Date" not in request.headers


def test_cluster_headers_are_sent_and_signed() -> None:
    cluster = make_cluster(headers=MappingProxyType({"X-Team": "search"}))
    request = ADAPTER.build_request(cluster, AGENT, chat(user("Hi")), AUTH)
    assert request.headers["X-Team"] == "search"
    assert "x-team" in request.headers["Authorization"].split("SignedHeaders=")[1]
