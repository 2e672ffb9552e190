"""Every error the sidecar raises on purpose, and how each reaches the client.

    AstraError                      base: carries a `Failure` (status, type, code, message)
    ├── ClientError                 the caller's mistake (bad JSON, unknown agent, body too big):
    │                               4xx, never retried, never counts against a breaker
    ├── UpstreamError               an attempt at one cluster failed; the Failure says whether to
    │   │                           retry and whether the breaker counts it
    │   ├── UpstreamStatusError     the upstream answered with an error status
    │   ├── UpstreamNetworkError    connect refused/reset, read timeout: no usable HTTP answer
    │   ├── UpstreamMalformedError  an HTTP answer that is not what the provider's API returns
    │   ├── UpstreamTooLargeError   an answer over one of the read limits (size, SSE line, frame,
    │   │                           headers, decompression) or refused outright (a redirect, an
    │   │                           encoding the sidecar did not ask for): never retried on the
    │   │                           same cluster, counts against its breaker, falls back
    │   └── UpstreamStreamError     the upstream failed after the first byte reached the client
    ├── BreakerOpenError            the cluster's breaker refused the attempt (→ next fallback)
    ├── AllClustersOpenError        every cluster in the plan is open → 503
    └── DeadlineExceededError       the request's overall deadline passed → 504

Classification is by status code and structured fields; message text is never matched. The
client always gets the error shape of the API it called, built by the ingress route from the
`Failure` (see `astra_sidecar.sidecar.serving`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from astra_sidecar.sidecar.protocols.base import Failure
from astra_sidecar.sidecar.protocols.openai.wire import openai_error_type

#: Upstream request headers that carry a credential (the value, or a `Bearer` token in it).
_CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "api-key"})
_REDACTED = "[redacted]"


class AstraError(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure

    @property
    def status(self) -> int:
        return self.failure.status


class ClientError(AstraError):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        error_type: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(
            Failure(
                status=status,
                error_type=error_type or openai_error_type(status),
                message=message,
                code=code,
                param=param,
            )
        )


class UpstreamError(AstraError):
    """Raised for one failed attempt; `cluster` is the cluster key it was made against.
    `reached_upstream` is False when the attempt failed before any request was sent (no
    credentials): it is then not counted in `x-astra-attempts`."""

    reached_upstream = True

    def __init__(self, failure: Failure, cluster: str = "") -> None:
        super().__init__(failure)
        self.cluster = cluster


class UpstreamStatusError(UpstreamError):
    pass


class UpstreamNetworkError(UpstreamError):
    pass


class UpstreamMalformedError(UpstreamError):
    """A 2xx answer that is not the provider API's shape (not JSON, missing fields). Counted as
    `malformed` in `astra_upstream_attempts_total`; retried when 502 is in `retryOn`."""

    def __init__(self, what: str, cluster: str = "", provider: str = "the provider") -> None:
        super().__init__(malformed_failure(what, provider), cluster)


class UpstreamStreamError(UpstreamError):
    pass


class UpstreamTooLargeError(UpstreamError):
    """An upstream answer the sidecar refuses to read on (see `astra_sidecar.sidecar.limits`).
    Counted as `too_large` in `astra_upstream_attempts_total` (code `upstream_too_large`, or
    `upstream_refused` for a redirect or an unasked-for encoding). The same upstream would answer
    the same way, so it is not retried there; it counts against the breaker and falls back."""

    def __init__(self, what: str, cluster: str = "", *, code: str = "too_large") -> None:
        super().__init__(refused_failure(what, code), cluster)


class BreakerOpenError(AstraError):
    def __init__(self, cluster: str) -> None:
        super().__init__(
            Failure(
                status=503,
                error_type="server_error",
                message=f"circuit breaker open for {cluster.split(':', 1)[0]}",
                code="circuit_open",
            )
        )
        self.cluster = cluster


class AllClustersOpenError(AstraError):
    def __init__(self) -> None:
        super().__init__(
            Failure(
                status=503,
                error_type="server_error",
                message="every provider for this agent is unavailable (circuit breakers open)",
                code="circuit_open",
            )
        )


class DeadlineExceededError(AstraError):
    def __init__(self, timeout_ms: int) -> None:
        super().__init__(
            Failure(
                status=504,
                error_type="timeout",
                message=f"request deadline of {timeout_ms} ms exceeded",
                code="deadline_exceeded",
            )
        )


def network_failure(message: str, *, timeout: bool = False) -> Failure:
    """The Failure for an attempt that got no usable HTTP answer."""
    return Failure(
        status=504 if timeout else 502,
        error_type="timeout" if timeout else "server_error",
        message=message,
        code="upstream_timeout" if timeout else "upstream_unreachable",
        retryable=True,
        breaker_counts=True,
    )


def malformed_failure(what: str, provider: str = "the provider") -> Failure:
    """The Failure for an answer that is not the provider API's shape."""
    return Failure(
        status=502,
        error_type="server_error",
        message=f"{provider} returned a malformed answer: {what}",
        code="upstream_malformed",
        retryable=True,
        breaker_counts=True,
    )


def refused_failure(what: str, code: str = "too_large") -> Failure:
    """The Failure for an answer over a read limit, or of a kind the sidecar never reads."""
    return Failure(
        status=502,
        error_type="server_error",
        message=f"upstream answer refused: {what}",
        code=f"upstream_{code}",
        retryable=False,
        breaker_counts=True,
    )


def without_credentials(failure: Failure, request_headers: Mapping[str, str]) -> Failure:
    """The failure with every credential sent upstream cut out of its message: some providers
    echo the key they refused ("Incorrect API key provided: sk-…"), and the message goes to the
    client and the logs."""
    message = failure.message
    for name, value in request_headers.items():
        if name.lower() not in _CREDENTIAL_HEADERS:
            continue
        token = value.split(" ", 1)[1] if value[:7].lower() == "bearer " else value
        for secret in {token.strip(), value}:
            if len(secret) >= 8 and secret in message:
                message = message.replace(secret, _REDACTED)
    return failure if message is failure.message else replace(failure, message=message)
