"""The agent policy's accessors for Gemini `GenerateContentRequest` bodies
(`astra_sidecar.sidecar.protocols.codec.PolicyAccess`; the policy itself is `astra_sidecar.sidecar.policy.agent`).

- Tools: each `functionDeclarations` entry the policy refuses is removed (a tool object left
  empty is dropped), and so is a built-in tool (`googleSearch`, `codeExecution`, …) whose field
  name it refuses; removed names are reported in order. `allowedFunctionNames` loses removed
  names (all of them removed → 400 `tool_not_allowed`, as forcing a removed tool on the OpenAI
  route); with no function left, `functionCallingConfig` goes too.
- `generationConfig.temperature` and `generationConfig.maxOutputTokens`; `generationConfig` is
  only written when one of them is set. No other sampling control excludes a default temperature,
  and Gemini needs no output cap.
- The model is in the URL (the cluster's), so `set_model` changes nothing. The agent's prompt
  goes first in `systemInstruction.parts`; Gemini bodies have no prompt-cache marks.
- The number of answers is `generationConfig.candidateCount`.

Every change replaces the object it changes: nested objects are shared with the caller's body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from astra_sidecar.compiler.table import Agent, PromptCache
from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.policy import reasoning_defaults
from astra_sidecar.sidecar.protocols.base import Body

Json = dict[str, Any]
Refused = Callable[[str], bool]

ALLOWED_NAMES_PARAM = "toolConfig.functionCallingConfig.allowedFunctionNames"
CANDIDATE_COUNT_PARAM = "generationConfig.candidateCount"


# --- tools ----------------------------------------------------------------------------------------


def _kept_declarations(declarations: list[Json], refused: Refused, removed: list[str]) -> list[Json]:
    kept = []
    for declaration in declarations:
        if refused(declaration["name"]):
            removed.append(declaration["name"])
        else:
            kept.append(declaration)
    return kept


def _kept_tool(tool: Json, refused: Refused, removed: list[str]) -> Json:
    """The tool object without what `refused` names (empty when nothing is left)."""
    kept: Json = {}
    for key, value in tool.items():
        if key == "functionDeclarations":
            declarations = _kept_declarations(value, refused, removed)
            if declarations:
                kept[key] = declarations
        elif refused(key):
            removed.append(key)
        else:
            kept[key] = value
    return kept


def _has_functions(tools: list[Json]) -> bool:
    return any(tool.get("functionDeclarations") for tool in tools)


def _fix_tool_config(body: Body, removed: list[str], functions_left: bool) -> None:
    config = body.get("toolConfig")
    if not isinstance(config, dict) or not isinstance(config.get("functionCallingConfig"), dict):
        return
    config, calling = dict(config), dict(config["functionCallingConfig"])
    names = calling.get("allowedFunctionNames")
    if names:
        left = [name for name in names if name not in removed]
        if not left:
            raise ClientError(
                400,
                f"tool '{names[0]}' is not allowed for this agent",
                param=ALLOWED_NAMES_PARAM,
                code="tool_not_allowed",
            )
        calling["allowedFunctionNames"] = left
    if functions_left:
        config["functionCallingConfig"] = calling
    else:
        del config["functionCallingConfig"]
    if config:
        body["toolConfig"] = config
    else:
        del body["toolConfig"]


# --- generationConfig -----------------------------------------------------------------------------


def _generation_config(body: Body) -> Json:
    config = body.get("generationConfig")
    return config if isinstance(config, dict) else {}


def _number(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _whole_number(value: Any) -> int | None:
    """An integer field's value (the request reader accepts `256.0` for 256)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _set_generation(body: Body, key: str, value: float) -> None:
    body["generationConfig"] = {**_generation_config(body), key: value}


class GeminiPolicyAccess:
    default_output_cap: int | None = None

    def remove_tools(self, body: Body, refused: Refused) -> tuple[str, ...]:
        tools = body.get("tools")
        if not tools:
            return ()
        removed: list[str] = []
        kept = [t for t in (_kept_tool(tool, refused, removed) for tool in tools) if t]
        if not removed:
            return ()
        if kept:
            body["tools"] = kept
        else:
            del body["tools"]
        _fix_tool_config(body, removed, _has_functions(kept))
        return tuple(removed)

    def temperature(self, body: Body) -> float | None:
        return _number(_generation_config(body).get("temperature"))

    def set_temperature(self, body: Body, value: float) -> None:
        _set_generation(body, "temperature", value)

    def sampling_chosen(self, body: Body) -> bool:
        return False

    def output_cap(self, body: Body) -> int | None:
        return _whole_number(_generation_config(body).get("maxOutputTokens"))

    def set_output_cap(self, body: Body, value: int) -> None:
        current = self.output_cap(body)
        _set_generation(body, "maxOutputTokens", value if current is None else min(current, value))

    def set_model(self, body: Body, model_id: str) -> None:
        """Nothing to do: the model is in the URL, which is the cluster's."""

    def add_system_prompt(self, body: Body, prompt: str | None, cache: PromptCache) -> None:
        if not prompt:
            return
        instruction = dict(body.get("systemInstruction") or {})
        instruction["parts"] = [{"text": prompt}, *(instruction.get("parts") or ())]
        body["systemInstruction"] = instruction

    def choices(self, body: Body) -> tuple[int | None, str]:
        return _whole_number(_generation_config(body).get("candidateCount")), CANDIDATE_COUNT_PARAM

    def apply_reasoning_default(self, body: Body, agent: Agent, model_id: str) -> None:
        reasoning_defaults.gemini_default(body, agent, model_id)


ACCESS = GeminiPolicyAccess()
