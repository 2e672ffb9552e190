"""Structured-but-wrong request bodies for each API: OpenAI Chat Completions, Anthropic Messages,
Gemini generateContent (see `tests.drills.fuzz_strategies`)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.drills.fuzz_values import (
    Strategy,
    agent_ids,
    counts,
    json_values,
    numbers,
    sometimes_wrong,
    texts,
    tool_names,
)

# --- OpenAI Chat Completions --------------------------------------------------------------------

_openai_part = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image_url", "input_audio", "file", "refusal", "bogus"])},
    optional={
        "text": sometimes_wrong(texts),
        "image_url": sometimes_wrong(
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
        "id": sometimes_wrong(st.text(max_size=8)),
        "type": st.sampled_from(["function", "bogus"]),
        "function": sometimes_wrong(
            st.fixed_dictionaries(
                {
                    "name": sometimes_wrong(tool_names),
                    "arguments": sometimes_wrong(st.just('{"city": "P"}')),
                }
            )
        ),
    }
)
_openai_message = st.fixed_dictionaries(
    {
        "role": sometimes_wrong(
            st.sampled_from(["user", "assistant", "system", "developer", "tool", "bogus"])
        )
    },
    optional={
        "content": sometimes_wrong(texts | st.none() | st.lists(sometimes_wrong(_openai_part), max_size=3)),
        "name": sometimes_wrong(st.text(max_size=8)),
        "tool_calls": sometimes_wrong(st.lists(_openai_tool_call, max_size=2)),
        "tool_call_id": sometimes_wrong(st.text(max_size=8)),
    },
)
_openai_tool = st.fixed_dictionaries(
    {"type": sometimes_wrong(st.just("function"))},
    optional={
        "function": sometimes_wrong(
            st.fixed_dictionaries(
                {"name": sometimes_wrong(tool_names)},
                optional={"parameters": json_values, "description": texts, "strict": st.booleans()},
            )
        )
    },
)
_openai_tool_choice = st.sampled_from(["auto", "none", "required", "bogus"]) | st.fixed_dictionaries(
    {"type": st.just("function"), "function": sometimes_wrong(st.fixed_dictionaries({"name": tool_names}))}
)
openai_bodies: Strategy = st.fixed_dictionaries(
    {
        "model": sometimes_wrong(agent_ids),
        "messages": sometimes_wrong(st.lists(sometimes_wrong(_openai_message), min_size=1, max_size=4)),
    },
    optional={
        "stream": sometimes_wrong(st.booleans()),
        "stream_options": sometimes_wrong(
            st.fixed_dictionaries({"include_usage": sometimes_wrong(st.booleans())})
        ),
        "temperature": sometimes_wrong(numbers),
        "top_p": sometimes_wrong(numbers),
        "max_tokens": sometimes_wrong(counts),
        "max_completion_tokens": sometimes_wrong(counts),
        "n": sometimes_wrong(st.integers(-2, 5)),
        "tools": sometimes_wrong(st.lists(sometimes_wrong(_openai_tool), max_size=3)),
        "tool_choice": sometimes_wrong(_openai_tool_choice),
        "parallel_tool_calls": sometimes_wrong(st.booleans()),
        "response_format": json_values,
        "stop": sometimes_wrong(st.lists(texts, max_size=3) | texts),
        "seed": sometimes_wrong(counts),
        "logit_bias": json_values,
        "user": sometimes_wrong(texts),
        "metadata": json_values,
        "reasoning_effort": sometimes_wrong(st.sampled_from(["low", "high"])),
    },
)

# --- Anthropic Messages -------------------------------------------------------------------------

_anthropic_block = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": sometimes_wrong(texts)}),
    st.fixed_dictionaries(
        {
            "type": st.just("image"),
            "source": sometimes_wrong(
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
            "id": sometimes_wrong(st.sampled_from(["toolu_1", "toolu_2", ""])),
            "name": sometimes_wrong(tool_names),
            "input": sometimes_wrong(st.dictionaries(st.text(max_size=5), json_values, max_size=2)),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("tool_result"), "tool_use_id": sometimes_wrong(st.sampled_from(["toolu_1", ""]))},
        optional={"content": sometimes_wrong(texts), "is_error": sometimes_wrong(st.booleans())},
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["thinking", "redacted_thinking", "document", "server_tool_use", "bogus"])},
        optional={"thinking": texts, "signature": texts, "data": texts, "source": json_values},
    ),
)
_anthropic_message = st.fixed_dictionaries(
    {
        "role": sometimes_wrong(st.sampled_from(["user", "assistant", "system"])),
        "content": sometimes_wrong(texts | st.lists(sometimes_wrong(_anthropic_block), max_size=3)),
    }
)
_anthropic_tool = st.fixed_dictionaries(
    {"name": sometimes_wrong(tool_names)},
    optional={
        "input_schema": sometimes_wrong(st.just({"type": "object", "properties": {}})),
        "description": texts,
        "type": st.sampled_from(["custom", "web_search_20250305", "bash_20250124", "bogus"]),
        "cache_control": json_values,
    },
)
anthropic_bodies: Strategy = st.fixed_dictionaries(
    {"messages": sometimes_wrong(st.lists(sometimes_wrong(_anthropic_message), min_size=1, max_size=4))},
    optional={
        "model": sometimes_wrong(st.sampled_from(["claude-x", ""])),
        "max_tokens": sometimes_wrong(counts),
        "system": sometimes_wrong(
            texts
            | st.lists(
                sometimes_wrong(st.fixed_dictionaries({"type": st.just("text"), "text": texts})), max_size=2
            )
        ),
        "stream": sometimes_wrong(st.booleans()),
        "temperature": sometimes_wrong(numbers),
        "top_p": sometimes_wrong(numbers),
        "top_k": sometimes_wrong(counts),
        "stop_sequences": sometimes_wrong(st.lists(texts, max_size=3)),
        "tools": sometimes_wrong(st.lists(sometimes_wrong(_anthropic_tool), max_size=3)),
        "tool_choice": sometimes_wrong(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["auto", "any", "tool", "none", "bogus"])},
                optional={"name": tool_names, "disable_parallel_tool_use": sometimes_wrong(st.booleans())},
            )
        ),
        "metadata": sometimes_wrong(st.fixed_dictionaries({"user_id": texts})),
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
        st.fixed_dictionaries({"text": sometimes_wrong(texts)}, optional={"thought": st.booleans()}),
        st.fixed_dictionaries(
            {
                "inlineData": sometimes_wrong(
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
                "functionCall": sometimes_wrong(
                    st.fixed_dictionaries(
                        {"name": sometimes_wrong(tool_names)},
                        optional={
                            "args": sometimes_wrong(
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
                "functionResponse": sometimes_wrong(
                    st.fixed_dictionaries({"name": sometimes_wrong(tool_names), "response": json_values})
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
        {"parts": sometimes_wrong(st.lists(sometimes_wrong(_gemini_part), max_size=3))},
        optional={"role": sometimes_wrong(st.sampled_from(["user", "model", "system", "function"]))},
    )
)
_gemini_generation_config = _spelled(
    st.fixed_dictionaries(
        {},
        optional={
            "temperature": sometimes_wrong(numbers),
            "topP": sometimes_wrong(numbers),
            "topK": sometimes_wrong(counts),
            "maxOutputTokens": sometimes_wrong(counts),
            "candidateCount": sometimes_wrong(st.integers(-1, 4)),
            "stopSequences": sometimes_wrong(st.lists(texts, max_size=3)),
            "responseMimeType": sometimes_wrong(st.sampled_from(["application/json", "text/plain", "x"])),
            "responseSchema": json_values,
            "responseJsonSchema": json_values,
            "seed": sometimes_wrong(counts),
            "thinkingConfig": sometimes_wrong(
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
                "functionDeclarations": sometimes_wrong(
                    st.lists(
                        sometimes_wrong(
                            st.fixed_dictionaries(
                                {"name": sometimes_wrong(tool_names)},
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
        {"contents": sometimes_wrong(st.lists(sometimes_wrong(_gemini_content), min_size=1, max_size=3))},
        optional={
            "systemInstruction": sometimes_wrong(_gemini_content),
            "generationConfig": sometimes_wrong(_gemini_generation_config),
            "tools": sometimes_wrong(st.lists(sometimes_wrong(_gemini_tool), max_size=3)),
            "toolConfig": sometimes_wrong(
                _spelled(
                    st.fixed_dictionaries(
                        {
                            "functionCallingConfig": sometimes_wrong(
                                st.fixed_dictionaries(
                                    {
                                        "mode": sometimes_wrong(
                                            st.sampled_from(["AUTO", "ANY", "NONE", "bogus"])
                                        )
                                    },
                                    optional={
                                        "allowedFunctionNames": sometimes_wrong(
                                            st.lists(tool_names, max_size=2)
                                        )
                                    },
                                )
                            )
                        }
                    )
                )
            ),
            "safetySettings": sometimes_wrong(
                st.lists(st.fixed_dictionaries({"category": texts, "threshold": texts}), max_size=2)
            ),
            "cachedContent": sometimes_wrong(texts),
            "labels": json_values,
            "model": json_values,
        },
    )
)
