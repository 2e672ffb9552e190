"""AWS credentials for Bedrock: botocore's standard credential chain, or a Bedrock API key.

- `AWS_BEARER_TOKEN_BEDROCK` set → a Bedrock API key, sent as `Authorization: Bearer`; it takes
  precedence over SigV4, as it does in botocore.
- Otherwise botocore's default chain resolves the credentials, once, in a worker thread: env
  keys (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`), web identity
  (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, EKS IRSA), SSO/assume-role/process profiles
  (`AWS_PROFILE`, `AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`), container and instance
  roles. Refreshable credentials (STS, SSO, IMDS…) are refreshed by botocore itself; each attempt
  takes a frozen snapshot in a worker thread (`asyncio.to_thread`), because a refresh blocks on
  the network. Static credentials are snapshotted once.

The environment is injectable (`env`) as far as botocore allows: the session's config chain
(profile, config and credentials file paths, region, IMDS settings), the env-key and container
providers, web identity variables and `AWS_EC2_METADATA_DISABLED` all read the given mapping.
Limits: `credential_source = Environment` inside an assume-role profile and
`AWS_ENDPOINT_URL_*` for the STS client are still read from the process environment by botocore.

`resolve_region` / `resolve_cluster` are called at start: the region is the cluster's, else the
one in a regional Bedrock base URL, else `AWS_REGION`, `AWS_DEFAULT_REGION`, then the profile's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from botocore.configprovider import BOTOCORE_DEFAUT_SESSION_VARIABLES, ConfigChainFactory
from botocore.credentials import (
    AssumeRoleWithWebIdentityProvider,
    BotoProvider,
    ContainerProvider,
    CredentialResolver,
    EnvProvider,
    OriginalEC2Provider,
    RefreshableCredentials,
    create_credential_resolver,
)
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.session import Session, get_session

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.errors import UpstreamError
from astra_sidecar.sidecar.protocols.base import AuthMaterial, AwsCredentials, Failure, Secret
from astra_sidecar.sidecar.protocols.bedrock import cluster_region

BEARER_TOKEN_ENV = "AWS_BEARER_TOKEN_BEDROCK"

#: Web identity settings: profile key → environment variable (botocore's names).
WEB_IDENTITY_ENV: Mapping[str, str] = {
    "web_identity_token_file": "AWS_WEB_IDENTITY_TOKEN_FILE",
    "role_arn": "AWS_ROLE_ARN",
    "role_session_name": "AWS_ROLE_SESSION_NAME",
}

_CONFIG_ERRORS = (NoCredentialsError, PartialCredentialsError, ProfileNotFound)


class AwsCredentialError(UpstreamError):
    """No usable AWS credentials: an operator's problem, so the plan falls back."""

    def __init__(self, cluster_key: str, message: str, *, retryable: bool) -> None:
        code = "credentials_unavailable" if retryable else "credentials_missing"
        super().__init__(Failure(500, "server_error", message, code=code, retryable=retryable), cluster_key)


# --- a botocore session reading an injected environment ----------------------------------------


def _use_env_config(session: Session, env: Mapping[str, str]) -> None:
    """Point the session's config variables (profile, file paths, region…) at `env`."""
    store = session.get_component("config_store")
    factory = ConfigChainFactory(session=session, environ=env)
    for name, (config_key, env_names, default, convert) in BOTOCORE_DEFAUT_SESSION_VARIABLES.items():
        chain = factory.create_config_chain(
            instance_name=name,
            env_var_names=env_names,
            config_property_names=config_key,
            default=default,
            conversion_func=convert,
        )
        store.set_config_provider(name, chain)


def _replace(resolver: CredentialResolver, method: str, provider: Any) -> None:
    resolver.insert_after(method, provider)
    resolver.remove(method)  # the first one with that name: botocore's own


def _web_identity_provider(session: Session, env: Mapping[str, str], region: str | None) -> Any:
    profile = session.get_config_variable("profile") or "default"

    def load_config() -> dict[str, Any]:
        config: dict[str, Any] = session.full_config
        overrides = {key: env[var] for key, var in WEB_IDENTITY_ENV.items() if env.get(var)}
        profiles = dict(config.get("profiles", {}))
        profiles[profile] = {**profiles.get(profile, {}), **overrides}
        return {**config, "profiles": profiles}

    def client_creator(service_name: str, **kwargs: Any) -> Any:
        return session.create_client(service_name, **{"region_name": region, **kwargs})

    return AssumeRoleWithWebIdentityProvider(
        load_config=load_config, client_creator=client_creator, profile_name=profile, disable_env_vars=True
    )


def aws_session(env: Mapping[str, str], region: str | None = None) -> Session:
    """A botocore session whose config and credential chain read `env` instead of os.environ."""
    session = get_session()
    _use_env_config(session, env)
    resolver = create_credential_resolver(session, region_name=region)
    _replace(resolver, "env", EnvProvider(environ=env))
    _replace(resolver, "container-role", ContainerProvider(environ=env))
    _replace(resolver, "ec2-credentials-file", OriginalEC2Provider(environ=env))
    _replace(resolver, "boto-config", BotoProvider(environ=env))
    _replace(resolver, "assume-role-with-web-identity", _web_identity_provider(session, env, region))
    if env.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        resolver.remove("iam-role")
    session.register_component("credential_provider", resolver)
    return session


# --- region -------------------------------------------------------------------------------------


def resolve_region(cluster: Cluster, env: Mapping[str, str] | None = None) -> str | None:
    """The region to sign for (and, with no base URL, to call); None when nothing says."""
    env = os.environ if env is None else env
    region = cluster_region(cluster) or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        return region
    try:
        configured = aws_session(env).get_config_variable("region")
    except BotoCoreError:
        return None
    return configured if isinstance(configured, str) and configured else None


def resolve_cluster(cluster: Cluster, env: Mapping[str, str] | None = None) -> Cluster:
    """`cluster` with its region filled in and, when it has none, the regional base URL."""
    region = resolve_region(cluster, env)
    if region is None:
        return cluster
    base_url = cluster.base_url or f"https://bedrock-runtime.{region}.amazonaws.com"
    return dataclasses.replace(cluster, region=region, base_url=base_url)


# --- the credential source ----------------------------------------------------------------------


def _material(frozen: Any) -> AuthMaterial:
    token = Secret(frozen.token) if frozen.token else None
    return AuthMaterial(aws=AwsCredentials(frozen.access_key, Secret(frozen.secret_key), token))


class AwsCredentialSource:
    """`CredentialSource` for `credentials.mode: aws` clusters."""

    def __init__(self, cluster: Cluster, env: Mapping[str, str] | None = None) -> None:
        self._key = cluster.key
        self._env = dict(os.environ if env is None else env)
        self._region = resolve_region(cluster, self._env)
        bearer = self._env.get(BEARER_TOKEN_ENV)
        self._bearer = AuthMaterial(token=Secret(bearer)) if bearer else None
        self._credentials: Any = None
        self._missing = False
        self._static: AuthMaterial | None = None
        self._lock = asyncio.Lock()

    @property
    def uses_api_key(self) -> bool:
        return self._bearer is not None

    async def material(self, inbound: Mapping[str, str]) -> AuthMaterial:
        if self._bearer is not None:
            return self._bearer
        if self._static is not None:
            return self._static
        credentials = self._credentials if self._credentials is not None else await self._resolve()
        try:
            frozen = await asyncio.to_thread(credentials.get_frozen_credentials)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc) from exc
        material = _material(frozen)
        if not isinstance(credentials, RefreshableCredentials):
            self._static = material
        return material

    async def _resolve(self) -> Any:
        async with self._lock:
            if self._credentials is None and not self._missing:
                try:
                    self._credentials = await asyncio.to_thread(self._load)
                except (BotoCoreError, ClientError) as exc:
                    raise self._error(exc) from exc
                self._missing = self._credentials is None
            if self._credentials is None:
                raise AwsCredentialError(
                    self._key,
                    "the sidecar found no AWS credentials for bedrock (env keys, profile, web identity, "
                    "container or instance role)",
                    retryable=False,
                )
            return self._credentials

    def _load(self) -> Any:
        return aws_session(self._env, self._region).get_credentials()

    def _error(self, exc: Exception) -> AwsCredentialError:
        retryable = not isinstance(exc, _CONFIG_ERRORS)
        message = f"the sidecar could not get AWS credentials for bedrock ({type(exc).__name__})"
        return AwsCredentialError(self._key, message, retryable=retryable)

    async def close(self) -> None:
        return None
