"""Hypothesis strategies for hostile requests: structured-but-wrong bodies for each API, raw
bytes, mangled JSON, odd headers and paths.

Every structured strategy mixes valid pieces with wrong ones at each level (`_sometimes_wrong`),
so that many examples get past validation into the policy, the translations and the upstream,
and many fail somewhere deep inside.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from tests.drills.fuzz_rig import AGENTS

Strategy = st.SearchStrategy[Any]

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=16)
)
#: Any JSON value, small.
json_values: Strategy = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def _sometimes_wrong(good: Strategy) -> Strategy:
    """Mostly `good`, else any JSON value (two to one)."""
    return st.one_of(good, good, json_values)


texts = st.text(max_size=40) | st.sampled_from(["", " ", "\x00", "\u202e", "{{ 7*7 }}", "😀" * 3, "a" * 300])
agent_ids = st.sampled_from([*AGENTS, *AGENTS, "nope", "", "../mock", "mock\x00", "MOCK", "a" * 200])
tool_names = st.sampled_from(["get_weather", "search", "delete_account", "other", "", "get-weather"])
numbers = (
    st.integers(-5, 5) | st.floats(-3, 3, allow_nan=False) | st.sampled_from([1e308, -1e308, 2**63, 0.5])
)
counts = st.integers(-3, 70_000) | st.sampled_from([2**53, 2**64, 1.5, True])

# --- OpenAI Chat Completions --------------------------------------------------------------------

_openai_part = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image_url", "input_audio", "file", "refusal", "bogus"])},
    optional={
        "text": _sometimes_wrong(texts),
        "image_url": _sometimes_wrong(
            st.fixed_dictionaries(
                {
                    "url": st.sampled_from(
                        ["data:image/png;base64,iVBORw0KGgo=", "http://169.254.169.254/x", ""]
                    )
                }
            )
        ),
        "input_audio": json_values,
        "file": json_values,
    },
)
_openai_tool_call = st.fixed_dictionaries(
    {
        "id": _sometimes_wrong(st.text(max_size=8)),
        "type": st.sampled_from(["function", "bogus"]),
        "function": _sometimes_wrong(
            st.fixed_dictionaries(
                {
                    "name": _sometimes_wrong(tool_names),
                    "arguments": _sometimes_wrong(st.just('{"city": "P"}')),
                }
            )
        ),
    }
)
_openai_message = st.fixed_dictionaries(
    {
        "role": _sometimes_wrong(
            st.sampled_from(["user", "assistant", "system", "developer", "tool", "bogus"])
        )
    },
    optional={
        "content": _sometimes_wrong(texts | st.none() | st.lists(_sometimes_wrong(_openai_part), max_size=3)),
        "name": _sometimes_wrong(st.text(max_size=8)),
        "tool_calls": _sometimes_wrong(st.lists(_openai_tool_call, max_size=2)),
        "tool_call_id": _sometimes_wrong(st.text(max_size=8)),
    },
)
_openai_tool = st.fixed_dictionaries(
    {"type": _sometimes_wrong(st.just("function"))},
    optional={
        "function": _sometimes_wrong(
            st.fixed_dictionaries(
                {"name": _sometimes_wrong(tool_names)},
                optional={"parameters": json_values, "description": texts, "strict": st.booleans()},
            )
        )
    },
)
_openai_tool_choice = st.sampled_from(["auto", "none", "required", "bogus"]) | st.fixed_dictionaries(
    {"type": st.just("function"), "function": _sometimes_wrong(st.fixed_dictionaries({"name": tool_names}))}
)
openai_bodies: Strategy = st.fixed_dictionaries(
    {
        "model": _sometimes_wrong(agent_ids),
        "messages": _sometimes_wrong(st.lists(_sometimes_wrong(_openai_message), min_size=1, max_size=4)),
    },
    optional={
        "stream": _sometimes_wrong(st.booleans()),
        "stream_options": _sometimes_wrong(
            st.fixed_dictionaries({"include_usage": _sometimes_wrong(st.booleans())})
        ),
        "temperature": _sometimes_wrong(numbers),
        "top_p": _sometimes_wrong(numbers),
        "max_tokens": _sometimes_wrong(counts),
        "max_completion_tokens": _sometimes_wrong(counts),
        "n": _sometimes_wrong(st.integers(-2, 5)),
        "tools": _sometimes_wrong(st.lists(_sometimes_wrong(_openai_tool), max_size=3)),
        "tool_choice": _sometimes_wrong(_openai_tool_choice),
        "parallel_tool_calls": _sometimes_wrong(st.booleans()),
        "response_format": json_values,
        "stop": _sometimes_wrong(st.lists(texts, max_size=3) | texts),
        "seed": _sometimes_wrong(counts),
        "logit_bias": json_values,
        "user": _sometimes_wrong(texts),
        "metadata": json_values,
        "reasoning_effort": _sometimes_wrong(st.sampled_from(["low", "high"])),
    },
)

# --- Anthropic Messages -------------------------------------------------------------------------

_anthropic_block = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": _sometimes_wrong(texts)}),
    st.fixed_dictionaries(
        {
            "type": st.just("image"),
            "source": _sometimes_wrong(
                st.fixed_dictionaries(
                    {
                        "type": st.sampled_from(["base64", "url", "bogus"]),
                        "media_type": st.sampled_from(["image/png", "image/x"]),
                        "data": st.sampled_from(["iVBORw0KGgo=", "!!"]),
                    }
                )
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("tool_use"),
            "id": _sometimes_wrong(st.sampled_from(["toolu_1", "toolu_2", ""])),
            "name": _sometimes_wrong(tool_names),
            "input": _sometimes_wrong(st.dictionaries(st.text(max_size=5), json_values, max_size=2)),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("tool_result"), "tool_use_id": _sometimes_wrong(st.sampled_from(["toolu_1", ""]))},
        optional={"content": _sometimes_wrong(texts), "is_error": _sometimes_wrong(st.booleans())},
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["thinking", "redacted_thinking", "document", "server_tool_use", "bogus"])},
        optional={"thinking": texts, "signature": texts, "data": texts, "source": json_values},
    ),
)
_anthropic_message = st.fixed_dictionaries(
    {
        "role": _sometimes_wrong(st.sampled_from(["user", "assistant", "system"])),
        "content": _sometimes_wrong(texts | st.lists(_sometimes_wrong(_anthropic_block), max_size=3)),
    }
)
_anthropic_tool = st.fixed_dictionaries(
    {"name": _sometimes_wrong(tool_names)},
    optional={
        "input_schema": _sometimes_wrong(st.just({"type": "object", "properties": {}})),
        "description": texts,
        "type": st.sampled_from(["custom", "web_search_20250305", "bash_20250124", "bogus"]),
        "cache_control": json_values,
    },
)
anthropic_bodies: Strategy = st.fixed_dictionaries(
    {"messages": _sometimes_wrong(st.lists(_sometimes_wrong(_anthropic_message), min_size=1, max_size=4))},
    optional={
        "model": _sometimes_wrong(st.sampled_from(["claude-x", ""])),
        "max_tokens": _sometimes_wrong(counts),
        "system": _sometimes_wrong(
            texts
            | st.lists(
                _sometimes_wrong(st.fixed_dictionaries({"type": st.just("text"), "text": texts})), max_size=2
            )
        ),
        "stream": _sometimes_wrong(st.booleans()),
        "temperature": _sometimes_wrong(numbers),
        "top_p": _sometimes_wrong(numbers),
        "top_k": _sometimes_wrong(counts),
        "stop_sequences": _sometimes_wrong(st.lists(texts, max_size=3)),
        "tools": _sometimes_wrong(st.lists(_sometimes_wrong(_anthropic_tool), max_size=3)),
        "tool_choice": _sometimes_wrong(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["auto", "any", "tool", "none", "bogus"])},
                optional={"name": tool_names, "disable_parallel_tool_use": _sometimes_wrong(st.booleans())},
            )
        ),
        "metadata": _sometimes_wrong(st.fixed_dictionaries({"user_id": texts})),
        "thinking": json_values,
        "service_tier": json_values,
    },
)

# --- Gemini generateContent ---------------------------------------------------------------------


def _spelled(strategy: Strategy) -> Strategy:
    """Dictionaries with some keys in proto snake_case (the API accepts both spellings)."""

    def respell(value: Any, snake: list[bool]) -> Any:
        if not isinstance(value, dict):
            return value
        out = {}
        for index, (key, item) in enumerate(value.items()):
            if snake[index % len(snake)]:
                key = "".join("_" + c.lower() if c.isupper() else c for c in key)
            out[key] = item
        return out

    return st.tuples(strategy, st.lists(st.booleans(), min_size=1, max_size=4)).map(lambda t: respell(*t))


_gemini_part = _spelled(
    st.one_of(
        st.fixed_dictionaries({"text": _sometimes_wrong(texts)}, optional={"thought": st.booleans()}),
        st.fixed_dictionaries(
            {
                "inlineData": _sometimes_wrong(
                    st.fixed_dictionaries(
                        {
                            "mimeType": st.sampled_from(["image/png", "x/y", ""]),
                            "data": st.sampled_from(["AAAA", "!"]),
                        }
                    )
                )
            }
        ),
        st.fixed_dictionaries(
            {
                "functionCall": _sometimes_wrong(
                    st.fixed_dictionaries(
                        {"name": _sometimes_wrong(tool_names)},
                        optional={
                            "args": _sometimes_wrong(
                                st.dictionaries(st.text(max_size=4), json_values, max_size=2)
                            )
                        },
                    )
                )
            },
            optional={"thoughtSignature": texts},
        ),
        st.fixed_dictionaries(
            {
                "functionResponse": _sometimes_wrong(
                    st.fixed_dictionaries({"name": _sometimes_wrong(tool_names), "response": json_values})
                )
            }
        ),
        st.fixed_dictionaries(
            {"fileData": json_values | st.fixed_dictionaries({"fileUri": texts, "mimeType": texts})}
        ),
        st.fixed_dictionaries({"executableCode": json_values, "codeExecutionResult": json_values}),
    )
)
_gemini_content = _spelled(
    st.fixed_dictionaries(
        {"parts": _sometimes_wrong(st.lists(_sometimes_wrong(_gemini_part), max_size=3))},
        optional={"role": _sometimes_wrong(st.sampled_from(["user", "model", "system", "function"]))},
    )
)
_gemini_generation_config = _spelled(
    st.fixed_dictionaries(
        {},
        optional={
            "temperature": _sometimes_wrong(numbers),
            "topP": _sometimes_wrong(numbers),
            "topK": _sometimes_wrong(counts),
            "maxOutputTokens": _sometimes_wrong(counts),
            "candidateCount": _sometimes_wrong(st.integers(-1, 4)),
            "stopSequences": _sometimes_wrong(st.lists(texts, max_size=3)),
            "responseMimeType": _sometimes_wrong(st.sampled_from(["application/json", "text/plain", "x"])),
            "responseSchema": json_values,
            "responseJsonSchema": json_values,
            "seed": _sometimes_wrong(counts),
            "thinkingConfig": _sometimes_wrong(
                st.fixed_dictionaries(
                    {}, optional={"thinkingBudget": counts, "includeThoughts": st.booleans()}
                )
            ),
        },
    )
)
_gemini_tool = _spelled(
    st.one_of(
        st.fixed_dictionaries(
            {
                "functionDeclarations": _sometimes_wrong(
                    st.lists(
                        _sometimes_wrong(
                            st.fixed_dictionaries(
                                {"name": _sometimes_wrong(tool_names)},
                                optional={
                                    "description": texts,
                                    "parameters": json_values,
                                    "parametersJsonSchema": json_values,
                                },
                            )
                        ),
                        max_size=3,
                    )
                )
            }
        ),
        st.fixed_dictionaries({"googleSearch": json_values}),
        st.fixed_dictionaries({"codeExecution": json_values}),
    )
)
gemini_bodies: Strategy = _spelled(
    st.fixed_dictionaries(
        {"contents": _sometimes_wrong(st.lists(_sometimes_wrong(_gemini_content), min_size=1, max_size=3))},
        optional={
            "systemInstruction": _sometimes_wrong(_gemini_content),
            "generationConfig": _sometimes_wrong(_gemini_generation_config),
            "tools": _sometimes_wrong(st.lists(_sometimes_wrong(_gemini_tool), max_size=3)),
            "toolConfig": _sometimes_wrong(
                _spelled(
                    st.fixed_dictionaries(
                        {
                            "functionCallingConfig": _sometimes_wrong(
                                st.fixed_dictionaries(
                                    {
                                        "mode": _sometimes_wrong(
                                            st.sampled_from(["AUTO", "ANY", "NONE", "bogus"])
                                        )
                                    },
                                    optional={
                                        "allowedFunctionNames": _sometimes_wrong(
                                            st.lists(tool_names, max_size=2)
                                        )
                                    },
                                )
                            )
                        }
                    )
                )
            ),
            "safetySettings": _sometimes_wrong(
                st.lists(st.fixed_dictionaries({"category": texts, "threshold": texts}), max_size=2)
            ),
            "cachedContent": _sometimes_wrong(texts),
            "labels": json_values,
            "model": json_values,
        },
    )
)

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
