"""The upstream request: URL, auth headers and the `GenerateContentRequest` body.

AI Studio: `{base_url}/v1beta/models/{model}:generateContent` (`:streamGenerateContent?alt=sse`
when streaming), header `x-goog-api-key`. Vertex AI (`cluster.vertex` set): the regional
`aiplatform` host (or the cluster's own base URL when it is not the AI Studio default), header
`Authorization: Bearer`. Generation settings, JSON mode and tools (`tool_choice` → function calling
mode) are mapped here; messages in `messages`. `reasoning_effort` → `thinkingConfig`
(`thinkingBudget` from `policy.reasoning`, fitted to the model's range and below `maxOutputTokens`;
`includeThoughts` so the thought summaries come back as `reasoning_content`, unless the agent hides
reasoning; `none` → budget 0, or the smallest budget where thinking cannot be turned off). Gemini 3 still accepts
`thinkingBudget` (https://ai.google.dev/gemini-api/docs/thinking).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from astra_sidecar.compiler.table import Agent, Cluster, VertexTarget
from astra_sidecar.sidecar.policy.reasoning import effort_of, exposes, thinking_budget
from astra_sidecar.sidecar.protocols.base import AuthMaterial, Body, UpstreamRequest
from astra_sidecar.sidecar.protocols.gemini.content import bad_request
from astra_sidecar.sidecar.protocols.gemini.json_values import as_dict
from astra_sidecar.sidecar.protocols.gemini.messages import translate_messages
from astra_sidecar.sidecar.protocols.gemini.schema import clean_parameters
from astra_sidecar.sidecar.protocols.openai.wire import Json

AI_STUDIO_BASE_URL = "https://generativelanguage.googleapis.com"


def vertex_host(location: str) -> str:
    if location == "global":
        return "https://aiplatform.googleapis.com"
    if location in ("us", "eu"):
        return f"https://aiplatform.{location}.rep.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


def _model_path(model_id: str) -> str:
    bare = model_id.removeprefix("models/")
    return quote(bare, safe="-._~@")


def endpoint_url(cluster: Cluster, *, stream: bool) -> str:
    return model_url(cluster, "streamGenerateContent?alt=sse" if stream else "generateContent")


def model_url(cluster: Cluster, method: str) -> str:
    """`…/models/{model}:{method}` on AI Studio, or the Vertex AI publisher model's URL."""
    model = _model_path(cluster.model_id)
    base = cluster.base_url.rstrip("/")
    vertex: VertexTarget | None = cluster.vertex
    if vertex is None:
        return f"{base}/v1beta/models/{model}:{method}"
    host = vertex_host(vertex.location) if base == AI_STUDIO_BASE_URL else base
    project, location = quote(vertex.project, safe=""), quote(vertex.location, safe="")
    return f"{host}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:{method}"


def auth_headers(cluster: Cluster, auth: AuthMaterial) -> dict[str, str]:
    if auth.token is None:
        return {}
    if cluster.vertex is not None:
        return {"Authorization": "Bearer " + auth.token.reveal()}
    return {"x-goog-api-key": auth.token.reveal()}


def upstream_request(cluster: Cluster, payload: Json, auth: AuthMaterial, *, stream: bool) -> UpstreamRequest:
    """The HTTP request that sends one `GenerateContentRequest` to this cluster (AI Studio or
    Vertex URL and auth, the cluster's extra headers)."""
    headers = {"Content-Type": "application/json", **cluster.headers, **auth_headers(cluster, auth)}
    if stream:
        headers["Accept"] = "text/event-stream"
    return UpstreamRequest(
        url=endpoint_url(cluster, stream=stream), headers=headers, body=orjson.dumps(payload), stream=stream
    )


_GENERATION_KEYS = (
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("seed", "seed"),
    ("presence_penalty", "presencePenalty"),
    ("frequency_penalty", "frequencyPenalty"),
)


def generation_config(body: Body, agent: Agent) -> Json:
    config: Json = {}
    max_tokens = next(
        (v for v in (body.get("max_completion_tokens"), body.get("max_tokens")) if v is not None),
        agent.max_output_tokens,
    )
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    for openai_key, gemini_key in _GENERATION_KEYS:
        if body.get(openai_key) is not None:
            config[gemini_key] = body[openai_key]
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        config["candidateCount"] = n
    config.update(_response_format(body.get("response_format")))
    thinking = thinking_config(body, max_tokens, agent)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    return config


def thinking_config(body: Body, max_tokens: Any, agent: Agent | None = None) -> Json | None:
    """`thinkingConfig` for the body's `reasoning_effort`, the budget fitted to the model
    (`compiler/table/reasoning.py`); none for a model without thinking. Thought summaries are
    asked for unless the agent hides reasoning."""
    cap = max_tokens if isinstance(max_tokens, int) else None
    budget = thinking_budget(body, agent, "gemini", str(body.get("model") or ""), cap)
    if budget is None:
        return None
    if not budget or effort_of(body) == "none":  # off, or the smallest where it cannot be off
        return {"thinkingBudget": budget}
    return {"thinkingBudget": budget, "includeThoughts": agent is None or exposes(agent)}


def _response_format(fmt: Any) -> Json:
    fmt = as_dict(fmt)
    if fmt.get("type") == "json_object":
        return {"responseMimeType": "application/json"}
    if fmt.get("type") != "json_schema":
        return {}
    out: Json = {"responseMimeType": "application/json"}
    schema = as_dict(fmt.get("json_schema")).get("schema")
    if isinstance(schema, dict):
        out["responseJsonSchema"] = schema
    return out


def _declaration(tool: Any, where: str) -> Json:
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        raise bad_request(where, "only function tools can be sent to Gemini", "unsupported_tool")
    function = as_dict(tool.get("function"))
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request(where, "function tool without a name")
    declaration: Json = {"name": name}
    if isinstance(function.get("description"), str):
        declaration["description"] = function["description"]
    parameters = clean_parameters(function.get("parameters"))
    if parameters is not None:
        declaration["parameters"] = parameters
    return declaration


def _named_choice(choice: Any) -> str | None:
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = as_dict(choice.get("function")).get("name")
        return name if isinstance(name, str) else None
    return None


def tools_and_config(body: Body) -> Json:
    tools = body.get("tools")
    if not tools:
        return {}
    declarations = [_declaration(t, f"tools[{i}]") for i, t in enumerate(tools)]
    choice = body.get("tool_choice")
    mode, allowed = "AUTO", None
    if choice == "none":
        mode = "NONE"
    elif choice == "required":
        mode = "ANY"
    elif (name := _named_choice(choice)) is not None:
        mode, allowed = "ANY", [name]
    elif isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        spec = as_dict(choice.get("allowed_tools"))
        keep = {_named_choice(t) for t in spec.get("tools") or ()}
        declarations = [d for d in declarations if d["name"] in keep]
        mode = "ANY" if spec.get("mode") == "required" else "AUTO"
    calling: Json = {"mode": mode}
    if allowed is not None:
        calling["allowedFunctionNames"] = allowed
    return {
        "tools": [{"functionDeclarations": declarations}],
        "toolConfig": {"functionCallingConfig": calling},
    }


def translate_request(body: Body, agent: Agent) -> Json:
    conv = translate_messages(body.get("messages"))
    request: Json = {"contents": conv.contents}
    if conv.system:
        request["systemInstruction"] = {"parts": conv.system}
    config = generation_config(body, agent)
    if config:
        request["generationConfig"] = config
    request.update(tools_and_config(body))
    return request
