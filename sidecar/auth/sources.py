"""The credential sources that need no provider SDK: env keys, passthrough, none."""

from __future__ import annotations

import re
from collections.abc import Mapping

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.errors import ClientError, UpstreamError
from astra_sidecar.sidecar.protocols.base import NO_AUTH, AuthMaterial, Failure, Secret

_BEARER = "bearer "
_HEADER_SAFE = re.compile(r"[\x21-\x7e]*")


class MissingCredentialError(UpstreamError):
    """The sidecar has no key for this cluster: an operator's problem, so the plan falls back."""

    reached_upstream = False

    def __init__(self, cluster: Cluster, variable: str) -> None:
        super().__init__(
            Failure(
                status=500,
                error_type="server_error",
                message=f"the sidecar has no credentials for {cluster.provider}: {variable} is not set",
                code="credentials_missing",
            ),
            cluster.key,
        )


class EnvKeySource:
    """A key read once from the environment (at start or reload) and held as a Secret."""

    def __init__(self, cluster: Cluster, env: Mapping[str, str]) -> None:
        self._cluster = cluster
        self._variable = cluster.credentials.env or ""
        value = env.get(self._variable) if self._variable else None
        if value:
            self._material = AuthMaterial(token=Secret(value))
        elif not cluster.credentials.required:
            keyless = cluster.credentials.keyless_token
            self._material = AuthMaterial(token=Secret(keyless)) if keyless else NO_AUTH
        else:
            self._material = None  # type: ignore[assignment]

    @property
    def missing(self) -> str | None:
        return self._variable if self._material is None else None

    async def material(self, inbound: Mapping[str, str]) -> AuthMaterial:
        if self._material is None:
            raise MissingCredentialError(self._cluster, self._variable)
        return self._material

    async def close(self) -> None:
        return None


def presented_key(inbound: Mapping[str, str]) -> str | None:
    """The key a caller's SDK sent, as sent: x-api-key, x-goog-api-key or Authorization: Bearer."""
    for header in ("x-api-key", "x-goog-api-key"):
        value = inbound.get(header)
        if value:
            return value
    authorization = inbound.get("authorization", "")
    if authorization[: len(_BEARER)].lower() == _BEARER:
        return authorization[len(_BEARER) :].strip() or None
    return None


def caller_key(inbound: Mapping[str, str]) -> str | None:
    """The caller's own provider key, checked fit to go into an upstream header."""
    key = presented_key(inbound)
    return _checked(key) if key is not None else None


def _checked(key: str) -> str:
    """The key, if it can go into an upstream header as it is: visible ASCII only (a key from
    `?key=` could otherwise carry CR/LF into the upstream request's headers)."""
    if not _HEADER_SAFE.fullmatch(key):
        raise ClientError(
            401, "the API key contains characters that are not allowed in a key", code="invalid_api_key"
        )
    return key


class PassthroughSource:
    """Forwards the caller's key to this cluster's provider only."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    async def material(self, inbound: Mapping[str, str]) -> AuthMaterial:
        key = caller_key(inbound)
        if key is None:
            raise ClientError(
                401,
                f"this agent forwards your own {self._cluster.provider} key: send it in the Authorization header",
                code="missing_api_key",
            )
        return AuthMaterial(token=Secret(key))

    async def close(self) -> None:
        return None


class NoAuthSource:
    async def material(self, inbound: Mapping[str, str]) -> AuthMaterial:
        return NO_AUTH

    async def close(self) -> None:
        return None

