"""Hypothesis strategies for hostile requests: structured-but-wrong bodies for each API, raw
bytes, mangled JSON, odd headers and paths.

Every structured strategy mixes valid pieces with wrong ones at each level (`sometimes_wrong`),
so that many examples get past validation into the policy, the translations and the upstream,
and many fail somewhere deep inside. The values live in `tests.drills.fuzz_values`, the bodies in
`tests.drills.fuzz_bodies`; this module has the routes, raw-byte edits and headers, and is what
the fuzz tests import.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from tests.drills.fuzz_bodies import anthropic_bodies, gemini_bodies, openai_bodies
from tests.drills.fuzz_rig import AGENTS
from tests.drills.fuzz_values import Strategy, json_values

__all__ = [
    "BODIES",
    "DECODED",
    "ROUTES",
    "SINGLETONS",
    "Strategy",
    "anthropic_bodies",
    "anthropic_paths",
    "encode",
    "gemini_bodies",
    "gemini_paths",
    "headers",
    "json_values",
    "mangled",
    "openai_bodies",
    "openai_paths",
]

# --- routes ---------------------------------------------------------------------------------------

_gemini_methods = st.sampled_from(
    [
        "generateContent",
        "streamGenerateContent",
        "streamGenerateContent",
        "countTokens",
        "",
        "generateContent:x",
    ]
)
gemini_paths: Strategy = st.builds(
    lambda agent, version, model, method, query: (
        f"/v1/gemini/{agent}/{version}/models/{model}:{method}{query}"
    ),
    st.sampled_from([*AGENTS, "nope"]),
    st.sampled_from(["v1beta", "v1"]),
    st.sampled_from(["gemini-2.5-flash", "x", "a%2Fb"]),
    _gemini_methods,
    st.sampled_from(["", "?alt=sse", "?alt=sse", "?alt=json", "?key=k&alt=sse", "?alt=sse&alt=x"]),
)
anthropic_paths: Strategy = st.builds(
    lambda agent, tail: f"/v1/anthropic/{agent}{tail}",
    st.sampled_from([*AGENTS, "nope"]),
    st.sampled_from(["/v1/messages", "/v1/messages", "/messages"]),
)
openai_paths: Strategy = st.one_of(
    st.just("/v1/chat/completions"),
    st.just("/v1/chat/completions"),
    st.builds(
        lambda prefix, agent, version: f"/v1/{prefix}/{agent}{version}/chat/completions",
        st.sampled_from(["openai", "groq", "ollama", "vllm"]),
        st.sampled_from([*AGENTS, "nope"]),
        st.sampled_from(["", "/v1"]),
    ),
)
ROUTES = {"openai": openai_paths, "anthropic": anthropic_paths, "gemini": gemini_paths}
BODIES = {"openai": openai_bodies, "anthropic": anthropic_bodies, "gemini": gemini_bodies}


def encode(body: Any) -> bytes:
    """JSON text (the standard library's encoder: integers beyond 64 bits are valid JSON too)."""
    return json.dumps(body, ensure_ascii=False).encode()


def mangled(raw: bytes) -> Strategy:
    """Near-valid JSON: `raw` cut short, with bytes flipped, inserted or removed."""

    def edit(ops: list[tuple[int, int, int]]) -> bytes:
        data = bytearray(raw)
        for kind, at, value in ops:
            at = at % (len(data) + 1)
            if kind == 0:
                del data[at:]
            elif kind == 1 and at < len(data):
                data[at] = value
            elif kind == 2:
                data.insert(at, value)
            elif at < len(data):
                del data[at]
        return bytes(data)

    op = st.tuples(st.integers(0, 3), st.integers(0, 10_000), st.sampled_from(b'{}[]",:\\\x00\xff0e-tn '))
    return st.lists(op, min_size=1, max_size=4).map(edit)


# --- headers --------------------------------------------------------------------------------------

_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_!#$%&'*+.^`|~", min_size=1, max_size=24)
#: Header values aiohttp's client will send (no CR, LF or NUL): printable Latin-1, odd spacing.
_header_value = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=200
)
_known = st.sampled_from(
    [
        "content-type",
        "content-encoding",
        "accept",
        "accept-encoding",
        "authorization",
        "x-api-key",
        "x-goog-api-key",
        "x-astra-token",
        "anthropic-version",
        "anthropic-beta",
        "x-request-id",
        "x-forwarded-for",
        "x-forwarded-host",
        "host",
        "cookie",
        "user-agent",
        "x-stainless-retry-count",
        "openai-organization",
        "x-amz-date",
    ]
)
_interesting_values = st.sampled_from(
    [
        "application/json",
        "application/json; charset=latin-1",
        "text/plain",
        "multipart/form-data; boundary=x",
        "gzip",
        "deflate",
        "identity",
        "Bearer sk-evil",
        "Bearer ",
        "2023-06-01",
        "http://169.254.169.254",
        "evil.example",
        "100-continue",
        "a" * 4000,
    ]
)
#: Headers HTTP allows once: aiohttp's parser refuses a request that repeats one (a text/plain 400
#: before the app; see `test_fuzz.test_http_level_refusals_are_4xx`), so the fuzzer sends each once.
SINGLETONS = frozenset(
    {"content-length", "content-location", "content-range", "content-type", "etag", "host"}
    | {"max-forwards", "server", "transfer-encoding", "user-agent"}
)


#: Request body encodings aiohttp decodes (others are refused by its parser, text/plain 400).
DECODED = frozenset({"gzip", "deflate", "identity", ""})


def _valid_http(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drops repeated singleton headers, body encodings aiohttp does not decode, and `Expect`
    values other than 100-continue (aiohttp answers those itself, before the sidecar's
    middleware, with a text/plain 417: see
    `test_fuzz.test_unknown_expect_gets_an_error_in_the_api_shape`)."""
    seen: set[str] = set()
    out = []
    for name, value in pairs:
        lower = name.lower()
        if (
            (lower in SINGLETONS and lower in seen)
            or (lower == "expect" and value != "100-continue")
            or (lower == "content-encoding" and value.strip().lower() not in DECODED)
        ):
            continue
        seen.add(lower)
        out.append((name, value))
    return out


headers: Strategy = st.lists(
    st.just(("expect", "100-continue")) | st.tuples(_known | _token, _interesting_values | _header_value),
    max_size=8,
).map(_valid_http)
