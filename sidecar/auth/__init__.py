"""Credential sources: where the `AuthMaterial` for one cluster comes from.

One source per cluster, built once at start (and on reload) by `credential_source_for`:

- `env`: the key is read from the named environment variable at start, held as a `Secret`;
- `passthrough`: the caller's own key (Authorization / x-api-key / x-goog-api-key) is forwarded,
  to this cluster only;
- `none`: keyless local servers and `mock`;
- `aws`: botocore's credential chain (env, profile, web identity…), refreshed by botocore;
- `google`: Application Default Credentials or a service-account file via google-auth, with the
  access token cached until shortly before it expires.

Adapters never read the environment; only these sources do, and only at start or refresh.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from astra_sidecar.sidecar.protocols.base import AuthMaterial


class CredentialSource(Protocol):
    async def material(self, inbound: Mapping[str, str]) -> AuthMaterial:
        """The auth material for one attempt; `inbound` are the caller's request headers."""
        ...

    async def close(self) -> None: ...
