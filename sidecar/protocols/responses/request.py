"""A Responses request (https://platform.openai.com/docs/api-reference/responses/create) → the
OpenAI Chat Completions body every adapter reads. What each field becomes:

| Responses field                     | Chat Completions                                                  |
|-------------------------------------|-------------------------------------------------------------------|
| `instructions`                      | a leading `system` message                                        |
| `input` string                      | one `user` message                                                |
| `input` message items (`type: message` or role only; roles user, assistant, system, developer → system) | messages; parts `input_text`/`output_text` → text, `refusal` → text, `input_image` (`image_url`) → `image_url` |
| `function_call` items               | `tool_calls` of the assistant message they follow (or a new one); with a `namespace`, named `{namespace}__{name}` |
| `function_call_output` items        | `tool` messages                                                   |
| `reasoning` items                   | dropped: chat messages have no place for them (as `include: ["reasoning.encrypted_content"]` round trips on Codex) |
| `tools` of type `function`, `namespace` | function tools (`strict` kept; see `tools`)                   |
| `tool_choice`                       | `auto`/`none`/`required`, or a named function                     |
| `text.format` `json_schema`/`json_object` | `response_format`                                           |
| `text.verbosity`                    | `verbosity`                                                       |
| `max_output_tokens`                 | `max_completion_tokens`                                           |
| `temperature`, `top_p`, `parallel_tool_calls` (with tools), `prompt_cache_key` | the same              |
| `reasoning.effort`                  | `reasoning_effort`; `reasoning.summary` is accepted, no summary is produced |
| `user`, `safety_identifier`         | `user`                                                            |
| `stream`                            | `stream` with `stream_options.include_usage`                      |
| `store`, `previous_response_id`     | served by the sidecar's response store before translation (`store`) |
| `include`, `metadata`, `client_metadata`, `truncation: disabled`, `service_tier` | accepted; `metadata` is echoed |

Refused with a 400 naming the field: `conversation` (the sidecar keeps no conversations: use
`previous_response_id` or send the whole conversation in `input`), `item_reference` items, files,
built-in tools on a translated path (`tools`), `background`, `prompt` templates,
`truncation: auto`, and any other field.
"""

from __future__ import annotations

from typing import Any

import orjson

from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.responses.tools import chat_tools, flat_name

Json = dict[str, Any]

_ACCEPTED = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "text", "max_output_tokens",
        "temperature", "top_p", "reasoning", "parallel_tool_calls", "store", "stream", "include",
        "metadata", "prompt_cache_key", "user", "safety_identifier", "truncation", "service_tier",
        "stream_options", "client_metadata", "previous_response_id",
    }
)  # fmt: skip
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_CHOICES = ("auto", "none", "required")


def bad(message: str, param: str, code: str = "invalid_value") -> ClientError:
    return ClientError(400, message, param=param, code=code)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_fields(body: Any) -> Json:
    """The body with its `None` fields removed, or a 400 for a field the sidecar cannot serve."""
    if not isinstance(body, dict):
        raise bad("request body must be a JSON object", "body", "invalid_body")
    checked: Json = {key: value for key, value in body.items() if value is not None}
    if "conversation" in checked:
        raise bad(
            "'conversation' is not supported: this sidecar keeps no conversations. Use "
            "'previous_response_id', or send the whole conversation in 'input'",
            "conversation",
            "unsupported_parameter",
        )
    for key in checked:
        if key not in _ACCEPTED:
            raise bad(f"'{key}' is not supported by this sidecar", key, "unsupported_parameter")
    if checked.get("truncation", "disabled") != "disabled":
        raise bad("truncation: only 'disabled' is supported", "truncation", "unsupported_parameter")
    for key in ("stream", "store"):
        if key in checked and not isinstance(checked[key], bool):
            raise bad(f"'{key}' must be a boolean", key)
    return checked


def chat_body(model: str, body: Json, *, translate: bool = True) -> Json:
    """The Chat Completions body for a checked Responses body (see the module docstring). With
    `translate` false the body is only checked: built-in tools pass (a native path serves them)."""
    messages = _instructions(body.get("instructions")) + _input(body.get("input"))
    if not messages:
        raise bad("'input' must not be empty", "input")
    out: Json = {"model": model, "messages": messages}
    out.update(_scalars(body))
    out.update(_tools(body, translate))
    out.update(_text(body.get("text")))
    out.update(_reasoning(body.get("reasoning")))
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _scalars(body: Json) -> Json:
    out: Json = {}
    cap = body.get("max_output_tokens")
    if cap is not None:
        if not (_is_int(cap) and cap >= 1):
            raise bad("'max_output_tokens' must be an integer of at least 1", "max_output_tokens")
        out["max_completion_tokens"] = cap
    for key in ("temperature", "top_p"):
        if key in body:
            if not _is_number(body[key]):
                raise bad(f"'{key}' must be a number", key)
            out[key] = body[key]
    if isinstance(body.get("prompt_cache_key"), str):
        out["prompt_cache_key"] = body["prompt_cache_key"]
    user = body.get("safety_identifier") or body.get("user")
    if isinstance(user, str) and user:
        out["user"] = user
    return out


def _instructions(instructions: Any) -> list[Json]:
    if instructions is None or instructions == "":
        return []
    if not isinstance(instructions, str):
        raise bad("'instructions' must be a string", "instructions")
    return [{"role": "system", "content": instructions}]


def _input(items: Any) -> list[Json]:
    if isinstance(items, str):
        return [{"role": "user", "content": items}] if items else []
    if not isinstance(items, list):
        raise bad("'input' must be a string or an array of items", "input")
    out: list[Json] = []
    for index, item in enumerate(items):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise bad(f"{where} must be an object", where)
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            out.append(_message(item, where))
        elif kind == "function_call":
            _function_call(out, item, where)
        elif kind == "function_call_output":
            out.append(_function_output(item, where))
        elif kind != "reasoning":
            raise bad(f"{where}: items of type {kind!r} are not supported by this sidecar", f"{where}.type")
    return out


def _message(item: Json, where: str) -> Json:
    role = _ROLES.get(item.get("role"))  # type: ignore[arg-type]
    if role is None:
        raise bad(f"{where}.role must be user, assistant, system or developer", f"{where}.role")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise bad(f"{where}.content must be a string or an array of parts", f"{where}.content")
    parts = [_part(part, f"{where}.content[{i}]") for i, part in enumerate(content)]
    if role != "user" or all(part["type"] == "text" for part in parts):
        return {"role": role, "content": "".join(str(part.get("text", "")) for part in parts)}
    return {"role": role, "content": parts}


def _part(part: Any, where: str) -> Json:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text") and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "refusal" and isinstance(part.get("refusal"), str):
        return {"type": "text", "text": part["refusal"]}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise bad(f"{where}: only images given by 'image_url' are supported", f"{where}.image_url")
        image: Json = {"url": url}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    raise bad(f"{where}: parts of type {kind!r} are not supported by this sidecar", f"{where}.type")


def _text_field(item: Json, key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise bad(f"{where}.{key} must be a non-empty string", f"{where}.{key}")
    return value


def _function_call(out: list[Json], item: Json, where: str) -> None:
    arguments = item.get("arguments", "")
    if not isinstance(arguments, str):
        raise bad(f"{where}.arguments must be a JSON string", f"{where}.arguments")
    name = flat_name(item.get("namespace"), _text_field(item, "name", where))
    call = {
        "id": _text_field(item, "call_id", where),
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }
    last = out[-1] if out else None
    if last is not None and last["role"] == "assistant" and "tool_calls" in last:
        last["tool_calls"].append(call)
    elif last is not None and last["role"] == "assistant":
        last["tool_calls"] = [call]
    else:
        out.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _function_output(item: Json, where: str) -> Json:
    output = item.get("output")
    if isinstance(output, list):
        texts = [_part(part, f"{where}.output[{i}]") for i, part in enumerate(output)]
        if any(part["type"] != "text" for part in texts):
            raise bad(f"{where}.output: only text parts are supported in a tool result", f"{where}.output")
        output = "".join(part["text"] for part in texts)
    if not isinstance(output, str):
        raise bad(f"{where}.output must be a string or an array of text parts", f"{where}.output")
    return {"role": "tool", "tool_call_id": _text_field(item, "call_id", where), "content": output}


def _tool_choice(choice: Any) -> Any:
    if choice in _CHOICES:
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": flat_name(choice.get("namespace"), choice["name"])}}
    raise bad("tool_choice must be auto, none, required or a function tool", "tool_choice")


def _tools(body: Json, translate: bool) -> Json:
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise bad("'tools' must be an array", "tools")
    functions = chat_tools(tools, translate=translate)[0]
    out: Json = {"tools": functions} if functions else {}
    if "tool_choice" in body:
        choice = _tool_choice(body["tool_choice"])
        if functions:
            out["tool_choice"] = choice
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise bad("'parallel_tool_calls' must be a boolean", "parallel_tool_calls")
    if functions and parallel is not None:
        out["parallel_tool_calls"] = parallel
    return out


def _text(text: Any) -> Json:
    if text is None:
        return {}
    if not isinstance(text, dict):
        raise bad("'text' must be an object", "text")
    out: Json = {}
    if text.get("verbosity") is not None:
        out["verbosity"] = text["verbosity"]
    fmt = text.get("format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind == "text":
        return out
    if kind == "json_object":
        out["response_format"] = {"type": "json_object"}
    elif kind == "json_schema" and isinstance(fmt.get("schema"), dict):
        schema: Json = {"name": fmt.get("name") or "output", "schema": fmt["schema"]}
        if isinstance(fmt.get("strict"), bool):
            schema["strict"] = fmt["strict"]
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    else:
        raise bad("text.format must be text, json_object or json_schema with a 'schema'", "text.format")
    return out


def _reasoning(reasoning: Any) -> Json:
    if reasoning is None:
        return {}
    if not isinstance(reasoning, dict):
        raise bad("'reasoning' must be an object", "reasoning")
    effort = reasoning.get("effort")
    if effort is None:
        return {}
    if not isinstance(effort, str):
        raise bad("reasoning.effort must be a string", "reasoning.effort")
    return {"reasoning_effort": effort}


def echo_fields(body: Json, stored: bool) -> Json:
    """The request fields a Response object repeats (instructions, tools, settings); `stored`
    says whether the sidecar keeps this response."""
    text = body.get("text") if isinstance(body.get("text"), dict) else {}
    return {
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "text": {"format": {"type": "text"}, **orjson.loads(orjson.dumps(text))},
        "reasoning": body.get("reasoning"),
        "store": stored,
        "truncation": "disabled",
    }
