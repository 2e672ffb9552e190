"""Vertex AI credentials: a real service-account key made in the test, a fake OAuth token endpoint
on loopback, and a manual clock for expiry; plus the Vertex-mode decision from config and env."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from astra_sidecar.compiler.table import VertexTarget
from astra_sidecar.sidecar.auth.google import (
    SCOPES,
    GoogleCredentialSource,
    VertexConfigError,
    google_source_for,
    vertex_target,
)
from astra_sidecar.sidecar.clock import ManualClock
from astra_sidecar.sidecar.errors import UpstreamError, UpstreamNetworkError
from tests.builders import cluster
from tests.fakes.gemini_upstream import (
    GOOGLE_TOKEN_AUDIENCE,
    SERVICE_ACCOUNT_EMAIL,
    FakeGoogleOAuth,
    new_rsa_key,
    write_service_account,
)

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return new_rsa_key()


@pytest.fixture
async def token_server(
    aiohttp_server: ServerFactory, rsa_key: rsa.RSAPrivateKey
) -> tuple[FakeGoogleOAuth, str]:
    fake = FakeGoogleOAuth(rsa_key.public_key())
    server = await aiohttp_server(fake.app())
    return fake, str(server.make_url("/token"))


@pytest.fixture
def endpoint(token_server: tuple[FakeGoogleOAuth, str]) -> FakeGoogleOAuth:
    return token_server[0]


@pytest.fixture
def sa_file(tmp_path: Path, rsa_key: rsa.RSAPrivateKey, token_server: tuple[FakeGoogleOAuth, str]) -> Path:
    return write_service_account(tmp_path / "sa.json", rsa_key, token_server[1])


async def token_of(source: GoogleCredentialSource) -> str:
    material = await source.material({})
    assert material.token is not None
    return material.token.reveal()


async def test_service_account_token_is_cached_until_shortly_before_expiry(
    endpoint: FakeGoogleOAuth, sa_file: Path
) -> None:
    clock = ManualClock()
    source = GoogleCredentialSource(str(sa_file), clock=clock, refresh_margin_s=300)
    try:
        assert await token_of(source) == "ya29.token-1"
        claims = endpoint.assertions[0]
        assert (claims["iss"], claims["aud"], claims["scope"]) == (
            SERVICE_ACCOUNT_EMAIL,
            GOOGLE_TOKEN_AUDIENCE,
            SCOPES[0],
        )
        clock.advance(3290)
        assert await token_of(source) == "ya29.token-1"
        assert source.refreshes == 1
        clock.advance(20)  # 3310 s: past expiry (3600 s) minus the 300 s margin
        assert await token_of(source) == "ya29.token-2"
        assert source.refreshes == 2
        assert len(endpoint.assertions) == 2
    finally:
        await source.close()


async def test_short_lived_token_is_kept_for_half_its_life(endpoint: FakeGoogleOAuth, sa_file: Path) -> None:
    endpoint.expires_in = 400
    clock = ManualClock()
    source = GoogleCredentialSource(str(sa_file), clock=clock, refresh_margin_s=300)
    try:
        assert await token_of(source) == "ya29.token-1"
        clock.advance(190)
        assert await token_of(source) == "ya29.token-1"
        clock.advance(20)
        assert await token_of(source) == "ya29.token-2"
    finally:
        await source.close()


async def test_concurrent_requests_share_one_refresh(endpoint: FakeGoogleOAuth, sa_file: Path) -> None:
    source = GoogleCredentialSource(str(sa_file), clock=ManualClock())
    try:
        tokens = await asyncio.gather(*(token_of(source) for _ in range(8)))
        assert set(tokens) == {"ya29.token-1"}
        assert len(endpoint.assertions) == 1
    finally:
        await source.close()


async def test_application_default_credentials(
    endpoint: FakeGoogleOAuth, sa_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(sa_file))
    source = GoogleCredentialSource(clock=ManualClock())
    try:
        assert await token_of(source) == "ya29.token-1"
        assert endpoint.assertions[0]["iss"] == SERVICE_ACCOUNT_EMAIL
    finally:
        await source.close()


async def test_rejected_credentials_are_not_retryable(endpoint: FakeGoogleOAuth, sa_file: Path) -> None:
    endpoint.status = 400
    source = GoogleCredentialSource(str(sa_file), clock=ManualClock())
    try:
        with pytest.raises(UpstreamError) as caught:
            await source.material({})
        failure = caught.value.failure
        assert (failure.status, failure.code, failure.retryable, failure.breaker_counts) == (
            502,
            "credentials_unavailable",
            False,
            True,
        )
        assert failure.message == "Google rejected the Vertex AI credentials"
    finally:
        await source.close()


async def test_unreachable_token_endpoint_is_retryable(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    server = TestServer(web.Application())
    await server.start_server()
    dead_url = str(server.make_url("/token"))
    await server.close()
    sa = write_service_account(tmp_path / "sa.json", rsa_key, dead_url)
    source = GoogleCredentialSource(str(sa), clock=ManualClock())
    try:
        with pytest.raises(UpstreamNetworkError) as caught:
            await source.material({})
        assert caught.value.failure.retryable is True
        assert caught.value.failure.breaker_counts is True
    finally:
        await source.close()


async def test_missing_credentials_file(tmp_path: Path) -> None:
    source = GoogleCredentialSource(str(tmp_path / "absent.json"), clock=ManualClock())
    with pytest.raises(UpstreamError) as caught:
        await source.material({})
    assert caught.value.failure.retryable is False
    assert "absent.json" not in caught.value.failure.message
    await source.close()


def test_repr_hides_the_file() -> None:
    assert repr(GoogleCredentialSource("/secret/path.json")) == "GoogleCredentialSource(file)"
    assert repr(GoogleCredentialSource()) == "GoogleCredentialSource(adc)"


# --- Vertex mode decision ----------------------------------------------------------------------


#: An AI Studio cluster as the compiler writes it; Vertex comes from config (`vertex=`) or env.
GEMINI = cluster("gemini", "gemini-2.5-flash")


ENABLED = {"ASTRA_GEMINI_VERTEX_AI_ENABLED": "true", "ASTRA_GEMINI_VERTEX_AI_PROJECT": "proj-9"}


def test_ai_studio_by_default() -> None:
    assert vertex_target(GEMINI, {}) is None
    assert vertex_target(GEMINI, {"ASTRA_GEMINI_VERTEX_AI_ENABLED": "0"}) is None


def test_env_enables_vertex_with_defaults() -> None:
    assert vertex_target(GEMINI, ENABLED) == VertexTarget("proj-9", "global", None)


def test_env_sets_location_and_credentials_file() -> None:
    env = {
        **ENABLED,
        "ASTRA_GEMINI_VERTEX_AI_ENABLED": "1",
        "ASTRA_GEMINI_VERTEX_AI_LOCATION": "europe-west4",
        "ASTRA_GEMINI_VERTEX_AI_CREDENTIALS_FILE": "/run/secrets/sa.json",
    }
    assert vertex_target(GEMINI, env) == VertexTarget(
        "proj-9", "europe-west4", "/run/secrets/sa.json"
    )


def test_config_wins_and_env_fills_credentials_file() -> None:
    configured = VertexTarget("cfg-proj", "us-central1")
    assert vertex_target(cluster("gemini", "gemini-2.5-flash", vertex=configured), ENABLED) == configured
    env = {"ASTRA_GEMINI_VERTEX_AI_CREDENTIALS_FILE": "/sa.json"}
    assert vertex_target(cluster("gemini", "gemini-2.5-flash", vertex=configured), env) == VertexTarget(
        "cfg-proj", "us-central1", "/sa.json"
    )
    with_file = VertexTarget("cfg-proj", "us-central1", "/own.json")
    assert vertex_target(cluster("gemini", "gemini-2.5-flash", vertex=with_file), env) == with_file


def test_other_wires_are_never_vertex() -> None:
    assert vertex_target(cluster("gemini", "gemini-2.5-flash", wire="openai"), ENABLED) is None


@pytest.mark.parametrize(
    "env",
    [
        {"ASTRA_GEMINI_VERTEX_AI_ENABLED": "true"},
        {"ASTRA_GEMINI_VERTEX_AI_ENABLED": "yes", "ASTRA_GEMINI_VERTEX_AI_PROJECT": "  "},
        {"ASTRA_GEMINI_VERTEX_AI_ENABLED": "maybe", "ASTRA_GEMINI_VERTEX_AI_PROJECT": "p"},
    ],
)
def test_inconsistent_env_is_a_start_error(env: dict[str, str]) -> None:
    with pytest.raises(VertexConfigError):
        vertex_target(GEMINI, env)


def test_source_for_cluster_uses_its_credentials_file() -> None:
    with_file = cluster("gemini", "gemini-2.5-flash", vertex=VertexTarget("p", "global", "/sa.json"))
    assert repr(google_source_for(with_file)) == "GoogleCredentialSource(file)"
    assert repr(google_source_for(GEMINI)) == "GoogleCredentialSource(adc)"
