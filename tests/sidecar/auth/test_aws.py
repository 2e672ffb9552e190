"""AWS credentials for Bedrock: botocore's chain over an injected environment, API keys, region."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiohttp import web

from astra_sidecar.sidecar.auth import CredentialSource
from astra_sidecar.sidecar.auth.aws import (
    AwsCredentialError,
    AwsCredentialSource,
    resolve_cluster,
    resolve_region,
)
from astra_sidecar.sidecar.protocols.base import AuthMaterial, AwsCredentials, Secret
from tests.builders import cluster

NO_FILES = {
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


NOVA = "amazon.nova-lite-v1:0"
CLUSTER = cluster("bedrock", NOVA)  # region us-east-1, no endpoint: the regional one is derived
NO_REGION = cluster("bedrock", NOVA, region=None)


def aws(material: AuthMaterial) -> AwsCredentials:
    assert material.token is None and material.aws is not None
    return material.aws


@pytest.fixture(autouse=True)
def _no_process_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prove the injected env is what counts: the process env holds other (wrong) credentials."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAPROCESSENVWRONG")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "process-secret")
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    for name in ("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS"):
        monkeypatch.delenv(name, raising=False)


async def test_env_keys_with_session_token() -> None:
    env = {
        **NO_FILES,
        "AWS_ACCESS_KEY_ID": "AKIAENV",
        "AWS_SECRET_ACCESS_KEY": "env-secret",
        "AWS_SESSION_TOKEN": "sess-tok-9",
    }
    source: CredentialSource = AwsCredentialSource(CLUSTER, env)
    creds = aws(await source.material({}))
    assert creds == AwsCredentials("AKIAENV", Secret("env-secret"), Secret("sess-tok-9"))
    assert "env-secret" not in repr(creds) and "sess-tok-9" not in repr(await source.material({}))
    await source.close()


async def test_static_credentials_are_snapshotted_once() -> None:
    source = AwsCredentialSource(
        CLUSTER, {**NO_FILES, "AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s"}
    )
    first = await source.material({})
    assert await source.material({}) is first


async def test_process_environment_is_used_when_none_is_injected() -> None:
    creds = aws(await AwsCredentialSource(CLUSTER).material({}))
    assert (creds.access_key, creds.secret_key.reveal()) == ("AKIAPROCESSENVWRONG", "process-secret")


def _write_profiles(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "credentials").write_text(
        "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = default-secret\n\n"
        "[work]\naws_access_key_id = AKIAWORK\naws_secret_access_key = work-secret\n"
        "aws_session_token = work-token\n"
    )
    (tmp_path / "config").write_text(
        "[default]\nregion = us-west-2\n\n[profile work]\nregion = eu-central-1\n"
    )
    return {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


async def test_shared_credentials_file_default_and_named_profile(tmp_path: Path) -> None:
    files = _write_profiles(tmp_path)
    default = aws(await AwsCredentialSource(CLUSTER, files).material({}))
    assert (default.access_key, default.secret_key.reveal(), default.token) == (
        "AKIADEFAULT",
        "default-secret",
        None,
    )
    work = aws(await AwsCredentialSource(CLUSTER, {**files, "AWS_PROFILE": "work"}).material({}))
    assert work == AwsCredentials("AKIAWORK", Secret("work-secret"), Secret("work-token"))


async def test_env_keys_win_over_the_profile_file(tmp_path: Path) -> None:
    env = {**_write_profiles(tmp_path), "AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "e"}
    assert aws(await AwsCredentialSource(CLUSTER, env).material({})).access_key == "AKIAENV"


async def test_bedrock_api_key_takes_precedence() -> None:
    env = {
        **NO_FILES,
        "AWS_BEARER_TOKEN_BEDROCK": "ABSK-key",
        "AWS_ACCESS_KEY_ID": "AKIA",
        "AWS_SECRET_ACCESS_KEY": "s",
    }
    source = AwsCredentialSource(CLUSTER, env)
    assert source.uses_api_key
    assert await source.material({}) == AuthMaterial(token=Secret("ABSK-key"))


async def test_no_credentials_is_a_non_retryable_operator_error() -> None:
    source = AwsCredentialSource(CLUSTER, NO_FILES)
    for _ in range(2):
        with pytest.raises(AwsCredentialError) as raised:
            await source.material({})
        failure = raised.value.failure
        assert (failure.status, failure.code, failure.retryable, failure.breaker_counts) == (
            500,
            "credentials_missing",
            False,
            False,
        )
        assert raised.value.cluster == CLUSTER.key


@pytest.mark.parametrize(
    "env",
    [
        {**NO_FILES, "AWS_ACCESS_KEY_ID": "AKIAONLY"},
        {**NO_FILES, "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_PROFILE": "missing"},
    ],
)
async def test_broken_configuration_is_reported_without_secrets(env: dict[str, str]) -> None:
    with pytest.raises(AwsCredentialError) as raised:
        await AwsCredentialSource(CLUSTER, env).material({})
    assert raised.value.failure.code == "credentials_missing"
    assert "AKIAONLY" not in raised.value.failure.message


# --- web identity through a fake STS, with botocore refreshing ----------------------------------


class FakeSts:
    def __init__(self) -> None:
        self.calls: list[dict[str, list[str]]] = []
        self.app = web.Application()
        self.app.router.add_post("/", self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        form = parse_qs((await request.read()).decode())
        self.calls.append(form)
        n = len(self.calls)
        # The first credentials expire inside botocore's mandatory refresh window (10 min).
        lifetime = dt.timedelta(minutes=5) if n == 1 else dt.timedelta(hours=1)
        expiration = (dt.datetime.now(dt.UTC) + lifetime).strftime("%Y-%m-%dT%H:%M:%SZ")
        xml = f"""<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <AccessKeyId>ASIASTS{n}</AccessKeyId>
      <SecretAccessKey>sts-secret-{n}</SecretAccessKey>
      <SessionToken>sts-token-{n}</SessionToken>
      <Expiration>{expiration}</Expiration>
    </Credentials>
    <SubjectFromWebIdentityToken>system:serviceaccount:astra:sidecar</SubjectFromWebIdentityToken>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/bedrock/astra</Arn>
      <AssumedRoleId>AROAFAKE:astra</AssumedRoleId>
    </AssumedRoleUser>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>fake-request</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"""
        return web.Response(text=xml, content_type="text/xml")


ROLE_ARN = "arn:aws:iam::123456789012:role/bedrock"


@pytest.mark.parametrize("where", ["env", "profile"])
async def test_web_identity_via_the_chain_and_refresh(
    aiohttp_server: Any, tmp_path: Path, where: str
) -> None:
    sts = FakeSts()
    server = await aiohttp_server(sts.app)
    token_file = tmp_path / "token"
    token_file.write_text("eyJhbGciOi.fake.jwt")
    profile = f"[default]\nendpoint_url = {server.make_url('/')}\n"
    env = {**NO_FILES, "AWS_CONFIG_FILE": str(tmp_path / "config")}
    if where == "env":
        env |= {
            "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
            "AWS_ROLE_ARN": ROLE_ARN,
            "AWS_ROLE_SESSION_NAME": "astra",
        }
    else:
        profile += (
            f"web_identity_token_file = {token_file}\nrole_arn = {ROLE_ARN}\nrole_session_name = astra\n"
        )
    (tmp_path / "config").write_text(profile)
    source = AwsCredentialSource(CLUSTER, env)

    first = aws(await source.material({}))
    assert first == AwsCredentials("ASIASTS1", Secret("sts-secret-1"), Secret("sts-token-1"))
    second = aws(await source.material({}))  # refreshed by botocore: the first ones expire soon
    assert second == AwsCredentials("ASIASTS2", Secret("sts-secret-2"), Secret("sts-token-2"))
    assert aws(await source.material({})) == second
    assert len(sts.calls) == 2
    call = sts.calls[0]
    assert call["Action"] == ["AssumeRoleWithWebIdentity"]
    assert call["RoleArn"] == [ROLE_ARN]
    assert call["RoleSessionName"] == ["astra"]
    assert call["WebIdentityToken"] == ["eyJhbGciOi.fake.jwt"]


# --- region -------------------------------------------------------------------------------------


def test_region_precedence(tmp_path: Path) -> None:
    env = {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-2", **NO_FILES}
    assert resolve_region(cluster("bedrock", NOVA, region="us-east-2"), env) == "us-east-2"
    tokyo = "https://bedrock-runtime.ap-northeast-1.amazonaws.com"
    regional = cluster("bedrock", NOVA, base_url=tokyo, region=None)
    assert resolve_region(regional, env) == "ap-northeast-1"
    assert resolve_region(NO_REGION, env) == "eu-west-1"
    assert resolve_region(NO_REGION, {**NO_FILES, "AWS_DEFAULT_REGION": "eu-west-2"}) == "eu-west-2"
    profiles = _write_profiles(tmp_path)
    assert resolve_region(NO_REGION, {**profiles, "AWS_PROFILE": "work"}) == "eu-central-1"
    assert resolve_region(NO_REGION, NO_FILES) is None
    assert resolve_region(NO_REGION, {**NO_FILES, "AWS_PROFILE": "missing"}) is None


def test_resolve_cluster_fills_region_and_regional_base_url() -> None:
    resolved = resolve_cluster(NO_REGION, {**NO_FILES, "AWS_REGION": "eu-west-3"})
    assert (resolved.region, resolved.base_url) == (
        "eu-west-3",
        "https://bedrock-runtime.eu-west-3.amazonaws.com",
    )
    local = cluster("bedrock", NOVA, base_url="http://127.0.0.1:9999", region="us-east-1")
    custom = resolve_cluster(local, NO_FILES)
    assert (custom.region, custom.base_url) == ("us-east-1", "http://127.0.0.1:9999")
    assert resolve_cluster(NO_REGION, NO_FILES) is NO_REGION
