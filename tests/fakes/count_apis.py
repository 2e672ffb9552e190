"""The providers' token-count endpoints, for the fakes (`gemini_upstream`, `bedrock_upstream`):
each request checked the way its docs describe, and a count that is a stable function of the
request (not the provider's tokenizer) so tests can predict it.

- Gemini `models/{model}:countTokens` (https://ai.google.dev/api/tokens): AI Studio takes
  `contents` or `generateContentRequest` (never both; the latter names its `model`); Vertex AI
  (https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/count-tokens) takes
  `contents`, `systemInstruction`, `tools` and `generationConfig`. Any other field is Google's 400
  "Unknown name". The answer is `totalTokens` with `promptTokensDetails` (and Vertex's
  `totalBillableCharacters`).
- Bedrock `CountTokens` (`POST /model/{modelId}/count-tokens`,
  https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_CountTokens.html): botocore's
  own validation of the `input` union; the answer is `{"inputTokens": n}`.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.session import get_session
from botocore.validate import ParamValidator

Json = dict[str, Any]

_STUDIO_FIELDS = frozenset({"contents", "generateContentRequest"})
_VERTEX_FIELDS = frozenset(
    {"model", "instances", "contents", "systemInstruction", "tools", "generationConfig"}
)


def counted_tokens(*parts: Any) -> int:
    """The fakes' count: a stable function of what is counted."""
    return 3 + len(json.dumps(parts, sort_keys=True)) // 4


def _google_error(status: int, rpc: str, message: str) -> Json:
    return {"error": {"code": status, "message": message, "status": rpc}}


def gemini_count_answer(surface: str, model: str, body: Any) -> tuple[int, Json]:
    """(status, body) of a countTokens call on AI Studio (`ai_studio`) or Vertex AI (`vertex`)."""
    if not isinstance(body, dict):
        return 400, _google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
    allowed = _STUDIO_FIELDS if surface == "ai_studio" else _VERTEX_FIELDS
    unknown = sorted(set(body) - allowed)
    if unknown:
        message = f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.'
        return 400, _google_error(400, "INVALID_ARGUMENT", message)
    generate = body.get("generateContentRequest")
    if generate is not None:
        if "contents" in body:
            return 400, _google_error(
                400, "INVALID_ARGUMENT", "contents and generateContentRequest are exclusive."
            )
        if generate.get("model") != f"models/{model}":
            return 400, _google_error(400, "INVALID_ARGUMENT", "generateContentRequest.model is required.")
    request = generate if generate is not None else body
    if not request.get("contents"):
        return 400, _google_error(400, "INVALID_ARGUMENT", "contents is not specified")
    total = counted_tokens(request.get("contents"), request.get("systemInstruction"), request.get("tools"))
    answer: Json = {"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]}
    if surface == "vertex":
        answer["totalBillableCharacters"] = 4 * total
    return 200, answer


_BEDROCK = get_session().get_service_model("bedrock-runtime")


def bedrock_count_errors(model_id: str, body: Json) -> str | None:
    """botocore's validation of a CountTokens request; None when valid."""
    shape = _BEDROCK.operation_model("CountTokens").input_shape
    assert shape is not None
    report = ParamValidator().validate({**body, "modelId": model_id}, shape)
    if report.has_errors():
        return str(report.generate_report())
    converse = body["input"].get("converse")
    if converse is None or not converse.get("messages"):
        return "The model only supports counting tokens for Converse input with messages"
    return None


def bedrock_count_answer(body: Json) -> Json:
    converse = body["input"]["converse"]
    return {
        "inputTokens": counted_tokens(
            converse.get("messages"), converse.get("system"), converse.get("toolConfig")
        )
    }
