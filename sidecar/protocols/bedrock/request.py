"""The Converse request body: messages, inference settings, tools and structured output.

`toolChoice` has no `none`: it is omitted, and so are the tools, unless the history holds tool
blocks, in which case Bedrock requires `toolConfig` and the tools are kept (tools named in the
history are stubbed when the request has none). `allowed_tools` narrows the tool list;
`function.strict` is not forwarded. `cachePoint`s follow the system blocks / the tools when the
agent marks them cacheable. `json_schema` → `outputConfig.textFormat` (schema as a string).
Temperature is clamped to [0, 1]; `n` > 1 is rejected.
"""

from __future__ import annotations

from typing import Any

import orjson

from astra_sidecar.compiler.table import Agent
from astra_sidecar.sidecar.protocols.base import Body
from astra_sidecar.sidecar.protocols.bedrock.messages import bad_request, convert_messages
from astra_sidecar.sidecar.protocols.bedrock.reasoning import reasoning_fields
from astra_sidecar.sidecar.protocols.openai.wire import Json

_EMPTY_SCHEMA: Json = {"type": "object", "properties": {}}


def _tool_spec(tool: Any, where: str) -> Json:
    if (
        not isinstance(tool, dict)
        or tool.get("type") != "function"
        or not isinstance(tool.get("function"), dict)
    ):
        raise bad_request(
            f"{where}: only function tools are supported by Bedrock", "unsupported_tool", "tools"
        )
    function = tool["function"]
    spec: Json = {
        "name": function.get("name"),
        "inputSchema": {"json": function.get("parameters") or _EMPTY_SCHEMA},
    }
    if function.get("description"):
        spec["description"] = function["description"]
    return {"toolSpec": spec}


def _history_tool_names(turns: list[Json]) -> list[str] | None:
    """Names used by toolUse blocks, or None when the history has no tool blocks at all."""
    names: list[str] = []
    seen_tool_block = False
    for turn in turns:
        for block in turn["content"]:
            if "toolUse" in block:
                seen_tool_block = True
                if block["toolUse"]["name"] not in names:
                    names.append(block["toolUse"]["name"])
            elif "toolResult" in block:
                seen_tool_block = True
    return names if seen_tool_block else None


def _tool_choice(choice: Any, names: list[str]) -> tuple[Json | None, list[str] | None]:
    """(Bedrock toolChoice, names the tool list is narrowed to)."""
    if choice is None or choice == "none":
        return None, None
    if choice == "auto":
        return {"auto": {}}, None
    if choice == "required":
        return {"any": {}}, None
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if name not in names:
            raise bad_request(f"tool_choice names tool {name!r}, which is not in tools", param="tool_choice")
        return {"tool": {"name": name}}, None
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        keep = [(t.get("function") or {}).get("name") for t in allowed.get("tools") or ()]
        modes: dict[str, Json] = {"auto": {"auto": {}}, "required": {"any": {}}}
        mode = modes.get(allowed.get("mode", "auto"))
        if mode is None:
            raise bad_request("tool_choice.allowed_tools.mode must be auto or required", param="tool_choice")
        return mode, [n for n in names if n in keep]
    raise bad_request(f"tool_choice {choice!r} is not supported by Bedrock", param="tool_choice")


def tool_config(body: Body, agent: Agent, turns: list[Json]) -> Json | None:
    tools = [_tool_spec(t, f"tools[{i}]") for i, t in enumerate(body.get("tools") or ())]
    names = [t["toolSpec"]["name"] for t in tools]
    choice, keep = _tool_choice(body.get("tool_choice"), names)
    if keep is not None:
        tools = [t for t in tools if t["toolSpec"]["name"] in keep]
    history = _history_tool_names(turns)
    if body.get("tool_choice") == "none" and history is None:
        return None
    if not tools:
        if history is None:
            return None
        tools = [
            {"toolSpec": {"name": n, "inputSchema": {"json": _EMPTY_SCHEMA}}} for n in history or ["tool"]
        ]
    elif agent.prompt_cache.tools:
        tools.append({"cachePoint": {"type": "default"}})
    config: Json = {"tools": tools}
    if choice is not None:
        config["toolChoice"] = choice
    return config


def inference_config(body: Body, agent: Agent) -> Json:
    config: Json = {}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or agent.max_output_tokens
    if max_tokens is not None:
        config["maxTokens"] = int(max_tokens)
    temperature = body.get("temperature")
    if temperature is not None:
        config["temperature"] = min(max(float(temperature), 0.0), 1.0)
    if body.get("top_p") is not None:
        config["topP"] = float(body["top_p"])
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else list(stop or ())
    if any(s for s in stops):
        config["stopSequences"] = [s for s in stops if s]
    return config


def output_config(response_format: Any) -> Json | None:
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema") or {}
    schema = spec.get("schema") or {"type": "object"}
    definition: Json = {"schema": orjson.dumps(schema).decode()}
    if spec.get("name"):
        definition["name"] = spec["name"]
    if spec.get("description"):
        definition["description"] = spec["description"]
    return {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": definition}}}


def _with_reasoning(out: Json, body: Body, model_id: str, agent: Agent) -> None:
    """Reasoning fields (`bedrock.reasoning`); while thinking, Claude takes no temperature/topP.
    Without reasoning, reasoning blocks carried back from an earlier turn are not sent."""
    inference = out.get("inferenceConfig") or {}
    fields = reasoning_fields(body, model_id, inference.get("maxTokens"), agent)
    if fields is None:
        for turn in out["messages"]:
            turn["content"] = [b for b in turn["content"] if "reasoningContent" not in b]
        return
    out["additionalModelRequestFields"] = fields
    if "thinking" in fields:
        for key in ("temperature", "topP"):
            inference.pop(key, None)


def converse_body(body: Body, agent: Agent, model_id: str = "") -> Json:
    """The Converse request body (without `modelId`, which is in the URL)."""
    n = body.get("n")
    if n is not None and n != 1:
        raise bad_request("Bedrock supports only n=1", "unsupported_parameter", "n")
    system, turns = convert_messages(body.get("messages"))
    out: Json = {"messages": turns}
    if system:
        if agent.prompt_cache.system_prompt:
            system.append({"cachePoint": {"type": "default"}})
        out["system"] = system
    inference = inference_config(body, agent)
    if inference:
        out["inferenceConfig"] = inference
    tools = tool_config(body, agent, turns)
    if tools is not None:
        out["toolConfig"] = tools
    output = output_config(body.get("response_format"))
    if output is not None:
        out["outputConfig"] = output
    _with_reasoning(out, body, model_id, agent)
    return out
