"""The rate-limit headers of an answer, named as OpenAI documents them
(https://platform.openai.com/docs/guides/rate-limits#rate-limits-in-headers): `x-ratelimit-limit-*`,
`x-ratelimit-remaining-*`, `x-ratelimit-reset-*` (a duration such as `6m0s` or `20ms`), one
suffix per dimension; refusals add `Retry-After` and `retry-after-ms`, which the OpenAI and
Anthropic SDKs both read before retrying."""

from __future__ import annotations

from astra_sidecar.sidecar.fleet.model import Dimension, Verdict

_SUFFIX: dict[Dimension, str] = {
    "requests": "requests",
    "input_tokens": "input-tokens",
    "output_tokens": "output-tokens",
    "budget": "budget-tokens",
}


def duration(ms: int) -> str:
    """`20ms`, `1.5s`, `6m0s`, `2h0m0s`: the form OpenAI's reset headers use."""
    if ms < 1000:
        return f"{max(0, ms)}ms"
    minutes, seconds = divmod(ms / 1000.0, 60.0)
    hours, minutes = divmod(int(minutes), 60)
    text = f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


def ratelimit_headers(verdict: Verdict) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, window in verdict.windows.items():
        suffix = _SUFFIX.get(name)
        if suffix is None:
            continue
        headers[f"x-ratelimit-limit-{suffix}"] = str(window.limit)
        headers[f"x-ratelimit-remaining-{suffix}"] = str(window.remaining)
        headers[f"x-ratelimit-reset-{suffix}"] = duration(window.reset_ms)
    if not verdict.allowed:
        headers["retry-after-ms"] = str(verdict.retry_after_ms)
    return headers
