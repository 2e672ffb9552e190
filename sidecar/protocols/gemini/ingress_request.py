"""Reading a Gemini `GenerateContentRequest`: key spelling made canonical, then validated.

The REST API (proto3 JSON) accepts every field in lowerCamelCase and in its proto snake_case
name, and google-genai mixes both (`inlineData.mime_type`, `parameters_json_schema`,
`thinkingConfig.thinking_budget`). The sidecar rewrites field names to lowerCamelCase at the
levels it knows — the request, contents and parts (one level into a part's data object),
`systemInstruction`, `generationConfig` and `toolConfig` (whole subtrees, schemas excepted),
`tools` and their `functionDeclarations`, `safetySettings` — and never inside free-form values
(function `args` / `response`, schemas, `labels`). A field given in both spellings is a 400.
The result means the same to Google, so the native path sends it as is.

Validation raises `ClientError(400)` naming the field the way Google does
(`contents[0].parts[1].functionCall.name`). A content without a role is a `user` turn (as AI
Studio reads it; Vertex wants the role spelled out, so it is added). A `model` field in the body
is dropped: the agent in the path decides the model.
"""

from __future__ import annotations

from typing import Any

from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.base import Body

Json = dict[str, Any]

#: Part fields whose object value is a fixed-name message (camel-cased one level down).
_PART_MESSAGES = frozenset(
    {
        "inlineData",
        "fileData",
        "functionCall",
        "functionResponse",
        "executableCode",
        "codeExecutionResult",
        "videoMetadata",
    }
)
_SCHEMA_FIELDS = frozenset({"responseSchema", "responseJsonSchema"})
_ROLES = frozenset({"user", "model"})
_MODES = frozenset({"MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"})
_NUMBERS = ("temperature", "topP", "topK", "presencePenalty", "frequencyPenalty")
_INTEGERS = ("maxOutputTokens", "candidateCount", "seed", "logprobs")


def invalid(where: str, message: str) -> ClientError:
    """A 400 for one field, worded and named as Google would."""
    return ClientError(400, f"Invalid value at '{where}': {message}", param=where)


def camel(name: str) -> str:
    """`max_output_tokens` → `maxOutputTokens`; lowerCamelCase names are returned unchanged."""
    if "_" not in name.strip("_"):
        return name
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _camel_keys(value: Json, where: str) -> Json:
    out: Json = {}
    for key, item in value.items():
        name = camel(key)
        if name in out:
            raise invalid(f"{where}.{name}" if where else name, "the field is given twice")
        out[name] = item
    return out


def _camel_tree(value: Any, where: str, keep: frozenset[str] = frozenset()) -> Any:
    """Camel-cases every key of a fixed-name subtree, leaving the values of `keep` fields alone."""
    if isinstance(value, list):
        return [_camel_tree(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if not isinstance(value, dict):
        return value
    out = _camel_keys(value, where)
    return {k: v if k in keep else _camel_tree(v, f"{where}.{k}") for k, v in out.items()}


def _canonical_part(part: Any, where: str) -> Any:
    if not isinstance(part, dict):
        return part
    out = _camel_keys(part, where)
    for key in _PART_MESSAGES & out.keys():
        if isinstance(out[key], dict):
            out[key] = _camel_keys(out[key], f"{where}.{key}")
    return out


def _canonical_content(content: Any, where: str) -> Any:
    if not isinstance(content, dict):
        return content
    out = _camel_keys(content, where)
    parts = out.get("parts")
    if isinstance(parts, list):
        out["parts"] = [_canonical_part(p, f"{where}.parts[{i}]") for i, p in enumerate(parts)]
    return out


def _canonical_tool(tool: Any, where: str) -> Any:
    if not isinstance(tool, dict):
        return tool
    out = _camel_keys(tool, where)
    declarations = out.get("functionDeclarations")
    if isinstance(declarations, list):
        out["functionDeclarations"] = [
            _camel_keys(d, f"{where}.functionDeclarations[{i}]") if isinstance(d, dict) else d
            for i, d in enumerate(declarations)
        ]
    return out


def _each(value: Any, where: str, fix: Any) -> Any:
    return [fix(item, f"{where}[{i}]") for i, item in enumerate(value)] if isinstance(value, list) else value


def canonical_request(body: Json) -> Json:
    """The request with field names in lowerCamelCase (see the module docstring)."""
    out = _camel_keys(body, "")
    out["contents"] = _each(out.get("contents"), "contents", _canonical_content)
    if "systemInstruction" in out:
        out["systemInstruction"] = _canonical_content(out["systemInstruction"], "systemInstruction")
    if "generationConfig" in out:
        out["generationConfig"] = _camel_tree(out["generationConfig"], "generationConfig", _SCHEMA_FIELDS)
    if "toolConfig" in out:
        out["toolConfig"] = _camel_tree(out["toolConfig"], "toolConfig")
    if "tools" in out:
        out["tools"] = _each(out["tools"], "tools", _canonical_tool)
    if "safetySettings" in out:
        out["safetySettings"] = _each(
            out["safetySettings"],
            "safetySettings",
            lambda s, w: _camel_keys(s, w) if isinstance(s, dict) else s,
        )
    return out


# --- validation -----------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool)


def _object(value: Any, where: str) -> Json:
    if not isinstance(value, dict):
        raise invalid(where, "must be an object")
    return value


def _array(value: Any, where: str, *, non_empty: bool = False) -> list[Any]:
    if not isinstance(value, list):
        raise invalid(where, "must be an array")
    if non_empty and not value:
        raise invalid(where, "must not be empty")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise invalid(where, "must be a non-empty string")
    return value


def _check_part(part: Any, where: str) -> None:
    part = _object(part, where)
    if not part:
        raise invalid(where, "a part needs one of text, inlineData, fileData, functionCall, functionResponse")
    if "text" in part and not isinstance(part["text"], str):
        raise invalid(f"{where}.text", "must be a string")
    if "inlineData" in part:
        data = _object(part["inlineData"], f"{where}.inlineData")
        _string(data.get("mimeType"), f"{where}.inlineData.mimeType")
        if not isinstance(data.get("data"), str):
            raise invalid(f"{where}.inlineData.data", "must be a base64 string")
    if "fileData" in part:
        _string(_object(part["fileData"], f"{where}.fileData").get("fileUri"), f"{where}.fileData.fileUri")
    for key, payload in (("functionCall", "args"), ("functionResponse", "response")):
        if key in part:
            message = _object(part[key], f"{where}.{key}")
            _string(message.get("name"), f"{where}.{key}.name")
            if message.get(payload) is not None:
                _object(message[payload], f"{where}.{key}.{payload}")


def _check_content(content: Any, where: str, *, system: bool = False) -> None:
    content = _object(content, where)
    role = content.get("role")
    if not system and role is not None and (not isinstance(role, str) or role not in _ROLES):
        raise invalid(f"{where}.role", "must be 'user' or 'model'")
    parts = _array(content.get("parts"), f"{where}.parts", non_empty=not system)
    for index, part in enumerate(parts):
        _check_part(part, f"{where}.parts[{index}]")


def _check_generation_config(config: Any) -> None:
    config = _object(config, "generationConfig")
    for key in _NUMBERS:
        if config.get(key) is not None and not _is_number(config[key]):
            raise invalid(f"generationConfig.{key}", "must be a number")
    for key in _INTEGERS:
        if config.get(key) is not None and not _is_int(config[key]):
            raise invalid(f"generationConfig.{key}", "must be an integer")
    stops = config.get("stopSequences")
    if stops is not None and not all(
        isinstance(s, str) for s in _array(stops, "generationConfig.stopSequences")
    ):
        raise invalid("generationConfig.stopSequences", "must be an array of strings")
    if config.get("responseMimeType") is not None and not isinstance(config["responseMimeType"], str):
        raise invalid("generationConfig.responseMimeType", "must be a string")
    for key in _SCHEMA_FIELDS:
        if config.get(key) is not None:
            _object(config[key], f"generationConfig.{key}")


def _check_tools(tools: Any) -> None:
    for index, tool in enumerate(_array(tools, "tools")):
        where = f"tools[{index}]"
        tool = _object(tool, where)
        if "functionDeclarations" not in tool:
            continue
        declarations = _array(tool["functionDeclarations"], f"{where}.functionDeclarations")
        for position, declaration in enumerate(declarations):
            at = f"{where}.functionDeclarations[{position}]"
            declaration = _object(declaration, at)
            _string(declaration.get("name"), f"{at}.name")
            for key in ("parameters", "parametersJsonSchema"):
                if declaration.get(key) is not None:
                    _object(declaration[key], f"{at}.{key}")


def _check_tool_config(config: Any) -> None:
    calling = _object(config, "toolConfig").get("functionCallingConfig")
    if calling is None:
        return
    calling = _object(calling, "toolConfig.functionCallingConfig")
    mode = calling.get("mode")
    if mode is not None and (not isinstance(mode, str) or mode not in _MODES):
        raise invalid("toolConfig.functionCallingConfig.mode", "must be AUTO, ANY, NONE or VALIDATED")
    names = calling.get("allowedFunctionNames")
    if names is not None:
        where = "toolConfig.functionCallingConfig.allowedFunctionNames"
        if not all(isinstance(n, str) and n for n in _array(names, where)):
            raise invalid(where, "must be an array of function names")


def parse_request(body: Any) -> Body:
    """The canonical, validated request, or a `ClientError(400)` naming the offending field."""
    if not isinstance(body, dict):
        raise ClientError(400, "request body must be a JSON object (a GenerateContentRequest)")
    request = canonical_request(body)
    request.pop("model", None)  # the agent in the path decides the model
    contents = _array(request.get("contents"), "contents", non_empty=True)
    for index, content in enumerate(contents):
        _check_content(content, f"contents[{index}]")
        if content.get("role") is None:  # AI Studio reads a missing role as user; Vertex wants it
            content["role"] = "user"
    if request.get("systemInstruction") is not None:
        _check_content(request["systemInstruction"], "systemInstruction", system=True)
    if request.get("generationConfig") is not None:
        _check_generation_config(request["generationConfig"])
    if request.get("tools") is not None:
        _check_tools(request["tools"])
    if request.get("toolConfig") is not None:
        _check_tool_config(request["toolConfig"])
    if request.get("safetySettings") is not None:
        _array(request["safetySettings"], "safetySettings")
    return request
