"""Google OAuth access tokens for Vertex AI, and the decision whether a Gemini cluster uses Vertex.

`GoogleCredentialSource` turns a service-account key file — or, without a file, Application
Default Credentials (`google.auth.default`: ``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's user
credentials, workload identity, the metadata server) — into a bearer token with the
``cloud-platform`` scope. Other credential file types (authorized user, external account) go
through ADC, which is where google-auth validates them. google-auth is
blocking (it uses `requests`), so loading and refreshing run in a worker thread; one refresh at a
time, however many requests wait for it. The token is cached (cachetools `TLRUCache`) until
`refresh_margin_s` before it expires, measured on the injected clock; a short-lived token (less
than twice the margin) is kept for half its lifetime.

Failures become `UpstreamError`s so the attempt plan can fall back: an unreachable token endpoint
is retryable; a rejected or missing credential is not; both count against the cluster's breaker.
Messages name the failure kind only, never paths, keys or tokens.

`vertex_target(cluster, env)` decides Vertex mode at start: a cluster configured with `vertex`
keeps it (``ASTRA_GEMINI_VERTEX_AI_CREDENTIALS_FILE`` fills in a missing credentials file);
otherwise ``ASTRA_GEMINI_VERTEX_AI_ENABLED`` (1/true/yes/on) turns every Gemini cluster into a
Vertex one with ``ASTRA_GEMINI_VERTEX_AI_PROJECT`` (required), ``…_LOCATION`` (default
``global``, as google-genai) and ``…_CREDENTIALS_FILE`` (optional; ADC without it).

google-auth is the `vertex` extra: it is imported only by a `GoogleCredentialSource`, so AI Studio
serves from a plain install, and `require_google_auth` turns its absence into one clear error.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cachetools import TLRUCache

from astra_sidecar.compiler.table import Cluster, VertexTarget
from astra_sidecar.sidecar.clock import Clock, MonotonicClock
from astra_sidecar.sidecar.errors import UpstreamError, UpstreamNetworkError, UpstreamStatusError
from astra_sidecar.sidecar.protocols.base import AuthMaterial, Failure, Secret

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)

ENV_ENABLED = "ASTRA_GEMINI_VERTEX_AI_ENABLED"
ENV_PROJECT = "ASTRA_GEMINI_VERTEX_AI_PROJECT"
ENV_LOCATION = "ASTRA_GEMINI_VERTEX_AI_LOCATION"
ENV_CREDENTIALS_FILE = "ASTRA_GEMINI_VERTEX_AI_CREDENTIALS_FILE"
DEFAULT_LOCATION = "global"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})
_CACHE_KEY = "token"


VERTEX_EXTRA_HINT = "Vertex AI needs google-auth: pip install 'astra-sidecar[vertex]'"


class VertexConfigError(ValueError):
    """The Vertex AI environment variables are inconsistent (raised at start, never per request)."""


class VertexExtraMissing(VertexConfigError):
    """A Vertex AI cluster in an installation without the `vertex` extra (raised at start)."""


def google_auth_installed() -> bool:
    try:
        import google.auth  # noqa: F401
    except ImportError:
        return False
    return True


def require_google_auth(cluster_key: str) -> None:
    """Raises `VertexExtraMissing`, naming the cluster and the install command, without google-auth."""
    if not google_auth_installed():
        raise VertexExtraMissing(f"cluster {cluster_key}: {VERTEX_EXTRA_HINT}")


def _enabled(env: Mapping[str, str]) -> bool:
    raw = env.get(ENV_ENABLED, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise VertexConfigError(f"{ENV_ENABLED} must be one of 1/true/yes/on or 0/false/no/off")


def vertex_target(cluster: Cluster, env: Mapping[str, str]) -> VertexTarget | None:
    """The Vertex AI target of a cluster, or None for AI Studio (and for non-Gemini clusters)."""
    if cluster.wire != "gemini":
        return None
    credentials_file = env.get(ENV_CREDENTIALS_FILE) or None
    if cluster.vertex is not None:
        if cluster.vertex.credentials_file is None and credentials_file is not None:
            return dataclasses.replace(cluster.vertex, credentials_file=credentials_file)
        return cluster.vertex
    if not _enabled(env):
        return None
    project = env.get(ENV_PROJECT, "").strip()
    if not project:
        raise VertexConfigError(f"{ENV_ENABLED} is set but {ENV_PROJECT} is empty")
    location = env.get(ENV_LOCATION, "").strip() or DEFAULT_LOCATION
    return VertexTarget(project=project, location=location, credentials_file=credentials_file)


@dataclass(frozen=True, slots=True)
class _Token:
    value: Secret
    lifetime_s: float


def _failure(message: str, *, retryable: bool) -> Failure:
    return Failure(
        status=502,
        error_type="server_error",
        message=message,
        code="credentials_unavailable",
        retryable=retryable,
        breaker_counts=True,
    )


def _lifetime_s(expiry: dt.datetime | None) -> float:
    """Seconds until `expiry` (google-auth gives a naive UTC datetime); 0 when unknown."""
    if expiry is None:
        return 0.0
    if expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=dt.UTC)
    return max(0.0, (expiry - dt.datetime.now(dt.UTC)).total_seconds())


class GoogleCredentialSource:
    """Bearer tokens for Vertex AI from a credentials file or Application Default Credentials."""

    def __init__(
        self,
        credentials_file: str | None = None,
        *,
        clock: Clock | None = None,
        refresh_margin_s: float = 300.0,
    ) -> None:
        self._file = credentials_file
        self._clock = clock or MonotonicClock()
        self._margin = refresh_margin_s
        self._cache: TLRUCache[str, _Token] = TLRUCache(
            maxsize=1, ttu=self._expires_at, timer=self._clock.now
        )
        self._lock = asyncio.Lock()
        self._credentials: Any = None
        self._request: Any = None
        self.refreshes = 0

    def __repr__(self) -> str:
        source = "file" if self._file else "adc"
        return f"GoogleCredentialSource({source})"

    def _expires_at(self, _key: str, token: _Token, now: float) -> float:
        keep = token.lifetime_s - self._margin
        if keep < self._margin:
            keep = token.lifetime_s / 2
        return now + keep

    async def material(self, inbound: Mapping[str, str]) -> AuthMaterial:
        del inbound
        token = self._cache.get(_CACHE_KEY)
        if token is None:
            async with self._lock:
                token = self._cache.get(_CACHE_KEY)
                if token is None:
                    token = await self._refresh()
                    self._cache[_CACHE_KEY] = token
        return AuthMaterial(token=token.value)

    async def _refresh(self) -> _Token:
        import google.auth.exceptions

        try:
            token = await asyncio.to_thread(self._fetch)
        except google.auth.exceptions.TransportError as exc:
            raise UpstreamNetworkError(
                _failure("could not reach the Google token endpoint", retryable=True)
            ) from exc
        except google.auth.exceptions.RefreshError as exc:
            retryable = bool(getattr(exc, "retryable", False))
            raise UpstreamStatusError(
                _failure("Google rejected the Vertex AI credentials", retryable=retryable)
            ) from exc
        except (google.auth.exceptions.GoogleAuthError, OSError, ValueError) as exc:
            raise UpstreamError(
                _failure(f"Google credentials unavailable ({type(exc).__name__})", retryable=False)
            ) from exc
        self.refreshes += 1
        return token

    def _fetch(self) -> _Token:
        """Runs in a worker thread: load the credentials once, then refresh the access token."""
        if self._credentials is None:
            self._credentials = self._load()
        if self._request is None:
            import google.auth.transport.requests

            self._request = google.auth.transport.requests.Request()
        self._credentials.refresh(self._request)
        value = self._credentials.token
        if not isinstance(value, str) or not value:
            raise ValueError("the token endpoint returned no access token")
        return _Token(Secret(value), _lifetime_s(self._credentials.expiry))

    def _load(self) -> Any:
        import google.auth
        import google.oauth2.service_account

        if self._file:
            load: Any = google.oauth2.service_account.Credentials.from_service_account_file
            credentials = load(self._file, scopes=list(SCOPES))
        else:
            credentials, _ = google.auth.default(scopes=list(SCOPES))
        return credentials

    async def close(self) -> None:
        request, self._request = self._request, None
        if request is not None:
            await asyncio.to_thread(request.session.close)


def google_source_for(cluster: Cluster, *, clock: Clock | None = None) -> GoogleCredentialSource:
    """The credential source of a Vertex AI cluster (its service-account file, or ADC)."""
    credentials_file = cluster.vertex.credentials_file if cluster.vertex is not None else None
    return GoogleCredentialSource(credentials_file, clock=clock)
