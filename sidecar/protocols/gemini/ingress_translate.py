"""A Gemini `GenerateContentRequest` → an OpenAI chat body, for agents (or fallbacks) that do not
speak Gemini. The input is canonical (see `gemini_request`).

- `systemInstruction` text parts → one system message (joined by newlines).
- `user` turns: text → text parts; `inlineData` → `image_url` data URLs (images), `input_audio`
  (wav/mp3) or `file` data URLs (anything else, e.g. PDF); `fileData` with an http(s) image URI →
  `image_url`; `functionResponse` parts → `tool` messages, placed before the rest of the turn.
- `model` turns: text → assistant content (thought parts are dropped), `functionCall` →
  `tool_calls` with JSON-string arguments; the call's own `id` is kept, else one is made up
  (`call_<turn>_<n>`). Part signatures are dropped: the signed reasoning a provider needs back
  (Anthropic, Bedrock, Gemini through a translation) rides in the call id the sidecar gave.
- A `functionResponse` answers the earlier unanswered call with its `id` when it has one, else
  (or when no open call has that id) the first unanswered call of the same name, so repeated
  calls are answered in order; one that answers no call is a 400. `{"output": "<text>"}`
  responses become that text, any other response its JSON.
- `functionDeclarations` → function tools (`parametersJsonSchema` as is; `parameters`, Gemini's
  OpenAPI `Schema`, as JSON Schema: lower-case types, `nullable` → a `"null"` type). Built-in
  Gemini tools (googleSearch, codeExecution, …) have no equivalent: 400.
- `toolConfig.functionCallingConfig`: AUTO/VALIDATED → auto, NONE → none, ANY → required, or
  the one allowed function by name; `allowedFunctionNames` also filters the tools sent (naming
  no declared function is a 400).
- `generationConfig`: maxOutputTokens → max_completion_tokens, temperature, topP → top_p,
  stopSequences → stop, candidateCount > 1 → n, seed, presence/frequency penalties,
  responseLogprobs/logprobs → logprobs/top_logprobs, responseMimeType application/json →
  `response_format` (json_schema from responseJsonSchema or responseSchema, else json_object).
  `thinkingConfig` → `reasoning_effort` (`thinkingLevel` as it is; `thinkingBudget` 0 → none,
  -1 → medium, N → its level: `policy.reasoning.effort_from_thinking_config`).
  Not mapped: topK, other mime types, safetySettings, cachedContent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.policy.reasoning import effort_from_thinking_config
from astra_sidecar.sidecar.protocols.base import Body
from astra_sidecar.sidecar.protocols.gemini.ingress_request import camel, invalid

Json = dict[str, Any]

_AUDIO_FORMATS = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/mp3": "mp3", "audio/mpeg": "mp3"}
#: Part fields that describe a part rather than carry data: a part with only these is skipped.
_PART_METADATA = frozenset(
    {"thought", "thoughtSignature", "partMetadata", "videoMetadata", "mediaResolution"}
)
_GENERATION = (
    ("temperature", "temperature"),
    ("topP", "top_p"),
    ("presencePenalty", "presence_penalty"),
    ("frequencyPenalty", "frequency_penalty"),
)
_INTEGER_GENERATION = (("maxOutputTokens", "max_completion_tokens"), ("seed", "seed"))
_ALLOWED = "toolConfig.functionCallingConfig.allowedFunctionNames"


# --- schemas ------------------------------------------------------------------------------------


def json_schema(node: Any) -> Json:
    """Gemini's OpenAPI-3.0 `Schema` as JSON Schema (lower-case types, `nullable` as a null type)."""
    if not isinstance(node, dict):
        return {}
    out: Json = {}
    nullable = False
    for key, value in ((camel(k), v) for k, v in node.items()):
        if key == "type":
            if isinstance(value, str) and value.upper() != "TYPE_UNSPECIFIED":
                out["type"] = value.lower()
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {name: json_schema(sub) for name, sub in value.items()}
        elif key == "items":
            out["items"] = json_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            out["anyOf"] = [json_schema(sub) for sub in value]
        elif key == "nullable":
            nullable = value is True
        elif key == "propertyOrdering" or (key == "format" and value == "enum"):
            continue
        else:
            out[key] = value
    if nullable and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


# --- contents -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Calls:
    """Function calls made so far and not yet answered, in order: (id, name)."""

    open: list[tuple[str, str]] = field(default_factory=list)

    def called(self, call: Json, turn: int, position: int) -> str:
        given = call.get("id")
        call_id = given if isinstance(given, str) and given else f"call_{turn}_{position}"
        self.open.append((call_id, call["name"]))
        return call_id

    def answered(self, response: Json, where: str) -> str:
        given = response.get("id")
        index = next((i for i, (call_id, _) in enumerate(self.open) if given and call_id == given), None)
        if index is None:
            index = next((i for i, (_, name) in enumerate(self.open) if name == response["name"]), None)
        if index is not None:
            return self.open.pop(index)[0]
        raise invalid(where, f"functionResponse '{response['name']}' answers no earlier functionCall")


def _data_url(blob: Json) -> str:
    return f"data:{blob['mimeType']};base64,{blob['data']}"


def _inline_part(blob: Json) -> Json:
    mime = str(blob["mimeType"]).lower()
    if mime.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": _data_url(blob)}}
    if mime in _AUDIO_FORMATS:
        return {"type": "input_audio", "input_audio": {"data": blob["data"], "format": _AUDIO_FORMATS[mime]}}
    return {"type": "file", "file": {"file_data": _data_url(blob)}}


def _file_part(file: Json, where: str) -> Json:
    uri, mime = str(file["fileUri"]), str(file.get("mimeType") or "image/")
    if uri.startswith(("http://", "https://")) and mime.lower().startswith("image/"):
        return {"type": "image_url", "image_url": {"url": uri}}
    raise invalid(where, "only Gemini reads fileData URIs other than http(s) images")


def _unsupported(part: Json, where: str) -> ClientError:
    kinds = ", ".join(sorted(k for k in part if k not in _PART_METADATA))
    return invalid(where, f"{kinds} parts cannot be sent to this agent's provider")


def _user_turn(parts: list[Json], where: str, calls: _Calls) -> list[Json]:
    tools: list[Json] = []
    content: list[Json] = []
    for index, part in enumerate(parts):
        at = f"{where}.parts[{index}]"
        if "functionResponse" in part:
            response = part["functionResponse"]
            call_id = calls.answered(response, f"{at}.functionResponse")
            tools.append({"role": "tool", "tool_call_id": call_id, "content": _response_text(response)})
        elif "text" in part:
            if not part.get("thought"):
                content.append({"type": "text", "text": part["text"]})
        elif "inlineData" in part:
            content.append(_inline_part(part["inlineData"]))
        elif "fileData" in part:
            content.append(_file_part(part["fileData"], f"{at}.fileData"))
        elif not part.keys() <= _PART_METADATA:
            raise _unsupported(part, at)
    if not content:
        return tools
    if len(content) == 1 and content[0]["type"] == "text":
        return [*tools, {"role": "user", "content": content[0]["text"]}]
    return [*tools, {"role": "user", "content": content}]


def _response_text(response: Json) -> str:
    payload = response.get("response")
    if isinstance(payload, dict) and set(payload) == {"output"} and isinstance(payload["output"], str):
        return payload["output"]
    return orjson.dumps(payload if payload is not None else {}).decode()


def _model_turn(parts: list[Json], where: str, turn: int, calls: _Calls) -> list[Json]:
    texts: list[str] = []
    tool_calls: list[Json] = []
    for index, part in enumerate(parts):
        if "functionCall" in part:
            call = part["functionCall"]
            call_id = calls.called(call, turn, len(tool_calls))
            arguments = orjson.dumps(call.get("args") or {}).decode()
            tool_calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call["name"], "arguments": arguments},
                }
            )
        elif "text" in part:
            if not part.get("thought"):
                texts.append(part["text"])
        elif not part.keys() <= _PART_METADATA:
            raise _unsupported(part, f"{where}.parts[{index}]")
    if not texts and not tool_calls:
        return []
    message: Json = {"role": "assistant", "content": "".join(texts) if texts else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return [message]


def _system_text(instruction: Any) -> str:
    if not isinstance(instruction, dict):
        return ""
    parts = instruction.get("parts") or []
    return "\n".join(p["text"] for p in parts if isinstance(p.get("text"), str) and p["text"])


def messages_of(request: Json) -> list[Json]:
    messages: list[Json] = []
    system = _system_text(request.get("systemInstruction"))
    if system:
        messages.append({"role": "system", "content": system})
    calls = _Calls()
    for turn, content in enumerate(request["contents"]):
        where = f"contents[{turn}]"
        if content["role"] == "model":
            messages += _model_turn(content["parts"], where, turn, calls)
        else:
            messages += _user_turn(content["parts"], where, calls)
    if len(messages) == (1 if system else 0):
        raise invalid("contents", "has no text, media or function parts this agent's provider can read")
    return messages


# --- generation settings and tools ---------------------------------------------------------------


def _response_format(config: Json) -> Json | None:
    if str(config.get("responseMimeType", "")).lower() != "application/json":
        return None
    schema = config.get("responseJsonSchema")
    if schema is None and config.get("responseSchema") is not None:
        schema = json_schema(config["responseSchema"])
    if not isinstance(schema, dict):
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}


def generation_params(config: Any) -> Body:
    if not isinstance(config, dict):
        return {}
    out: Body = {}
    for gemini_key, openai_key in _GENERATION:
        if config.get(gemini_key) is not None:
            out[openai_key] = config[gemini_key]
    for gemini_key, openai_key in _INTEGER_GENERATION:
        if config.get(gemini_key) is not None:
            out[openai_key] = int(config[gemini_key])
    if config.get("stopSequences"):
        out["stop"] = list(config["stopSequences"])
    count = config.get("candidateCount")
    if count is not None and int(count) > 1:
        out["n"] = int(count)
    if config.get("responseLogprobs") is True:
        out["logprobs"] = True
        if config.get("logprobs") is not None:
            out["top_logprobs"] = int(config["logprobs"])
    response_format = _response_format(config)
    if response_format is not None:
        out["response_format"] = response_format
    effort = effort_from_thinking_config(config.get("thinkingConfig"))
    if effort is not None:
        out["reasoning_effort"] = effort
    return out


def shows_thoughts(request: Json) -> bool:
    """Whether thought parts go back: the caller asked (`includeThoughts`), or it set no
    `thinkingConfig` (then the agent's reasoning default and its `expose` decide)."""
    config = request.get("generationConfig")
    thinking = config.get("thinkingConfig") if isinstance(config, dict) else None
    return not isinstance(thinking, dict) or thinking.get("includeThoughts") is True


def _function_tool(declaration: Json) -> Json:
    function: Json = {"name": declaration["name"]}
    if isinstance(declaration.get("description"), str):
        function["description"] = declaration["description"]
    if isinstance(declaration.get("parametersJsonSchema"), dict):
        function["parameters"] = declaration["parametersJsonSchema"]
    elif isinstance(declaration.get("parameters"), dict):
        function["parameters"] = json_schema(declaration["parameters"])
    else:
        function["parameters"] = {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def _function_tools(tools: Any) -> list[Json]:
    out: list[Json] = []
    for index, tool in enumerate(tools or ()):
        for key, value in tool.items():
            if value is None:
                continue
            if key != "functionDeclarations":
                raise invalid(
                    f"tools[{index}].{key}", "built-in Gemini tools cannot be sent to this agent's provider"
                )
            out += [_function_tool(d) for d in value]
    return out


def _named(name: str) -> Json:
    return {"type": "function", "function": {"name": name}}


def tool_params(request: Json) -> Body:
    tools = _function_tools(request.get("tools"))
    if not tools:
        return {}
    config = request.get("toolConfig") or {}
    calling = config.get("functionCallingConfig") or {}
    mode = calling.get("mode") or "AUTO"
    names = calling.get("allowedFunctionNames") or []
    if names and mode != "NONE":
        tools = [t for t in tools if t["function"]["name"] in names]
        if not tools:
            raise invalid(_ALLOWED, "names no function of the request's functionDeclarations")
    out: Body = {"tools": tools}
    if mode == "NONE":
        out["tool_choice"] = "none"
    elif mode == "ANY":
        out["tool_choice"] = _named(names[0]) if len(names) == 1 else "required"
    elif calling:
        out["tool_choice"] = "auto"
    return out


def to_openai_body(request: Json, agent_id: str, stream: bool) -> Body:
    """The OpenAI chat body for one canonical GenerateContentRequest (`model` names the agent)."""
    body: Body = {"model": agent_id, "messages": messages_of(request)}
    body.update(generation_params(request.get("generationConfig")))
    body.update(tool_params(request))
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body
