"""A fake AWS Bedrock Runtime (Converse / ConverseStream), a real aiohttp app for tests.

Written from the published formats (botocore's bedrock-runtime service model and the AWS
event-stream framing), not from any client code:

- `POST /model/{modelId}/count-tokens` (CountTokens): `count_apis.bedrock_count_answer`.
- `POST /model/{modelId}/invoke` (InvokeModel) serves the Titan and Cohere embedding models:
  their documented request keys are checked and their documented answers sent (`invoke_answer`).
- `POST /model/{modelId}/converse` answers JSON; `/converse-stream` answers
  `application/vnd.amazon.eventstream` binary frames with correct CRCs (`encode_frame`).
- Every request must carry a valid SigV4 signature (recomputed with botocore from the bytes
  received: raw path, signed headers, body) for the known test credentials, or a known Bedrock
  API key as `Authorization: Bearer`; anything else gets 403 like AWS
  (`x-amzn-ErrorType: InvalidSignatureException` / `UnrecognizedClientException`).
- Every body is checked with botocore's own parameter validation against the bedrock-runtime
  service model; a body that fails gets 400 `ValidationException`.
- Tests script the answers (`fake.script(...)`: `Answer`, `Stream`, `Error`, `Cut`) and read what
  was received (`fake.requests`). With nothing scripted it answers "Hello from Bedrock".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import zlib
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from botocore.session import get_session
from botocore.validate import ParamValidator

from tests.fakes.count_apis import bedrock_count_answer, bedrock_count_errors

Json = dict[str, Any]

TEST_ACCESS_KEY = "AKIDEXAMPLEFAKE00001"
TEST_SECRET_KEY = "fake/secret/key/for/tests/only/0000000000"
TEST_BEARER_TOKEN = "ABSKfake-bedrock-api-key"
EVENT_STREAM = "application/vnd.amazon.eventstream"

_SERVICE_MODEL = get_session().get_service_model("bedrock-runtime")


# --- event-stream framing -----------------------------------------------------------------------

HeaderValue = str | bytes | bool | int


def _encode_header(name: str, value: HeaderValue) -> bytes:
    raw_name = name.encode()
    head = struct.pack(">B", len(raw_name)) + raw_name
    if isinstance(value, bool):
        return head + struct.pack(">B", 0 if value else 1)
    if isinstance(value, int):
        return head + struct.pack(">Bi", 4, value)
    data = value.encode() if isinstance(value, str) else value
    return head + struct.pack(">BH", 7 if isinstance(value, str) else 6, len(data)) + data


def encode_frame(headers: Mapping[str, HeaderValue], payload: bytes) -> bytes:
    """One event-stream message: prelude (total length, headers length, CRC32 of both), headers,
    payload, CRC32 of everything before it. All integers big-endian."""
    raw_headers = b"".join(_encode_header(k, v) for k, v in headers.items())
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + raw_headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event_frame(event_type: str, payload: Json) -> bytes:
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_frame(headers, orjson.dumps(payload))


def exception_frame(exception_type: str, message: str, **fields: Any) -> bytes:
    """A modeled exception, e.g. `throttlingException`, `modelStreamErrorException`."""
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_frame(headers, orjson.dumps({"message": message, **fields}))


def error_frame(code: str, message: str) -> bytes:
    return encode_frame({":error-code": code, ":error-message": message, ":message-type": "error"}, b"")


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def stream_frames(response: Json, *, piece: int = 3, metadata: bool = True) -> list[bytes]:
    """The ConverseStream frames equivalent to a Converse `response`: text split into `piece`-char
    deltas (no contentBlockStart, as Bedrock does for text), tool input as compact JSON split into
    fragments, then messageStop and (after it) metadata."""
    frames = [event_frame("messageStart", {"role": "assistant"})]
    for index, block in enumerate(response["output"]["message"]["content"]):
        if "text" in block:
            for text in _pieces(block["text"], piece):
                frames.append(
                    event_frame("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": text}})
                )
        elif "reasoningContent" in block:
            frames.extend(_reasoning_frames(index, block["reasoningContent"], piece))
        elif "toolUse" in block:
            use = block["toolUse"]
            start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
            frames.append(event_frame("contentBlockStart", {"contentBlockIndex": index, "start": start}))
            arguments = orjson.dumps(use["input"]).decode() if use["input"] else ""
            for fragment in _pieces(arguments, piece) if arguments else []:
                delta = {"toolUse": {"input": fragment}}
                frames.append(event_frame("contentBlockDelta", {"contentBlockIndex": index, "delta": delta}))
        frames.append(event_frame("contentBlockStop", {"contentBlockIndex": index}))
    frames.append(event_frame("messageStop", {"stopReason": response["stopReason"]}))
    if metadata:
        frames.append(event_frame("metadata", {"usage": response["usage"], "metrics": {"latencyMs": 42}}))
    return frames


def _reasoning_frames(index: int, content: Json, piece: int) -> list[bytes]:
    """ConverseStream's reasoning deltas: text pieces, then the signature (or redacted bytes)."""
    text = content.get("reasoningText") or {}
    deltas: list[Json] = [{"text": t} for t in _pieces(text.get("text", ""), piece)] if text else []
    if text.get("signature"):
        deltas.append({"signature": text["signature"]})
    if "redactedContent" in content:
        deltas.append({"redactedContent": content["redactedContent"]})
    return [
        event_frame("contentBlockDelta", {"contentBlockIndex": index, "delta": {"reasoningContent": d}})
        for d in deltas
    ]


def signed_reasoning(text: str) -> Json:
    """A Claude reasoning block as Converse returns it; the fake's signature is a digest of the
    text, so a block sent back altered or dropped is refused (see `reasoning_errors`)."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    return {"reasoningContent": {"reasoningText": {"text": text, "signature": "ErUBCkYIAx" + digest}}}


def reasoning_errors(body: Json) -> str | None:
    """Claude with thinking on Bedrock: budget ≥ 1024 and < maxTokens, and with tools the assistant
    turn before the final tool results starts with its signed reasoning block, unchanged."""
    thinking = (body.get("additionalModelRequestFields") or {}).get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or budget < 1024:
        return "thinking.budget_tokens: must be at least 1024"
    if budget >= (body.get("inferenceConfig") or {}).get("maxTokens", 0):
        return "max_tokens must be greater than thinking.budget_tokens"
    messages = body.get("messages") or []
    last = messages[-1]["content"] if messages else []
    if len(messages) < 2 or not any("toolResult" in b for b in last):
        return None
    first = (messages[-2]["content"] or [{}])[0]
    text = ((first.get("reasoningContent") or {}).get("reasoningText") or {}).get("text")
    if not isinstance(text, str) or first != signed_reasoning(text):
        return (
            "Expected `thinking` or `redacted_thinking`, but found `tool_use`. When `thinking` is "
            "enabled, a final `assistant` message must start with a thinking block."
        )
    return None


# --- canned answers -----------------------------------------------------------------------------


def usage(input_tokens: int = 10, output_tokens: int = 5, cache_read: int = 0, cache_write: int = 0) -> Json:
    out: Json = {"inputTokens": input_tokens, "outputTokens": output_tokens}
    out["totalTokens"] = input_tokens + output_tokens + cache_read + cache_write
    if cache_read or cache_write:
        out["cacheReadInputTokens"] = cache_read
        out["cacheWriteInputTokens"] = cache_write
    return out


def converse_response(
    content: Iterable[Json], stop_reason: str = "end_turn", token_usage: Json | None = None
) -> Json:
    return {
        "output": {"message": {"role": "assistant", "content": list(content)}},
        "stopReason": stop_reason,
        "usage": token_usage or usage(),
        "metrics": {"latencyMs": 42},
    }


def text_response(text: str, stop_reason: str = "end_turn", token_usage: Json | None = None) -> Json:
    return converse_response([{"text": text}], stop_reason, token_usage)


def tool_use(tool_use_id: str, name: str, arguments: Json) -> Json:
    return {"toolUse": {"toolUseId": tool_use_id, "name": name, "input": arguments}}


# --- scripted replies ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A JSON answer (status 200 unless told)."""

    body: Json
    status: int = 200


@dataclass(frozen=True)
class Stream:
    """An event-stream answer: `frames` written `chunk` bytes at a time (None: frame by frame)."""

    frames: list[bytes]
    chunk: int | None = None


@dataclass(frozen=True)
class Error:
    """An AWS error: status, `x-amzn-ErrorType` (unless `in_body`, then `__type`), `{"message"}`."""

    status: int
    error_type: str
    message: str = "error from fake bedrock"
    in_body: bool = False
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Cut:
    """Send these event-stream bytes, then drop the connection without ending the body."""

    data: bytes


Reply = Answer | Stream | Error | Cut


@dataclass
class Received:
    operation: str
    model_id: str
    raw_path: str
    headers: dict[str, str]
    body: bytes
    json: Json
    canonical_request: str | None = None
    validation_errors: str | None = None


# --- signature and validation -------------------------------------------------------------------


def _auth_parts(header: str) -> dict[str, str]:
    scheme, _, rest = header.partition(" ")
    if scheme != "AWS4-HMAC-SHA256":
        return {}
    parts = dict(item.strip().split("=", 1) for item in rest.split(",") if "=" in item)
    return parts


def recompute_signature(
    request_headers: Mapping[str, str],
    raw_path: str,
    body: bytes,
    signed_headers: list[str],
    credentials: ReadOnlyCredentials,
    region: str,
    service: str,
    scheme: str = "http",
) -> tuple[str, str]:
    """(canonical request, signature) as botocore computes them for the request as received."""
    headers = {name: request_headers.get(name, "") for name in signed_headers}
    aws_request = AWSRequest(
        method="POST", url=f"{scheme}://{request_headers['host']}{raw_path}", data=body, headers=headers
    )
    aws_request.context["timestamp"] = request_headers["x-amz-date"]
    signer = SigV4Auth(credentials, service, region)
    canonical = signer.canonical_request(aws_request)
    return canonical, signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)


def _with_blobs(value: Any) -> Any:
    """Image `bytes` (base64 in JSON) back to bytes, as botocore's serializer would receive them."""
    if isinstance(value, dict):
        out = {k: _with_blobs(v) for k, v in value.items()}
        source = out.get("source")
        if "format" in out and isinstance(source, dict) and isinstance(source.get("bytes"), str):
            out["source"] = {**source, "bytes": base64.b64decode(source["bytes"])}
        return out
    if isinstance(value, list):
        return [_with_blobs(v) for v in value]
    return value


def validation_errors(operation: str, model_id: str, body: Json) -> str | None:
    """botocore's parameter validation of a Converse/ConverseStream body; None when valid."""
    shape = _SERVICE_MODEL.operation_model(operation).input_shape
    assert shape is not None
    params = {**_with_blobs(body), "modelId": model_id}
    report = ParamValidator().validate(params, shape)
    return report.generate_report() if report.has_errors() else None


# --- InvokeModel: embedding models -------------------------------------------------------------
# Titan Text Embeddings V2 (docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html)
# and Cohere Embed (…/model-parameters-embed.html): their documented request keys and answers.

TITAN_KEYS = {"inputText", "dimensions", "normalize", "embeddingTypes"}
TITAN_DIMENSIONS = (256, 512, 1024)
COHERE_KEYS = {"texts", "input_type", "truncate", "embedding_types"}
COHERE_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering")
COHERE_SIZE = 1024


def fake_vector(text: str, size: int) -> list[float]:
    """A deterministic vector, exact in float32 (multiples of 1/8)."""
    return [(len(text) + i) / 8 for i in range(size)]


def invoke_errors(model_id: str, body: Json) -> str | None:
    if "titan-embed-text" in model_id:
        extra = sorted(set(body) - TITAN_KEYS)
        if extra:
            return f"Malformed input request: extraneous key [{extra[0]}] is not permitted"
        if not isinstance(body.get("inputText"), str) or not body["inputText"]:
            return "Malformed input request: required key [inputText] not found"
        if body.get("dimensions", 1024) not in TITAN_DIMENSIONS:
            return f"Malformed input request: {body['dimensions']} is not a valid enum value"
        return None
    if "cohere.embed" in model_id:
        extra = sorted(set(body) - COHERE_KEYS)
        if extra:
            return f"Malformed input request: extraneous key [{extra[0]}] is not permitted"
        texts = body.get("texts")
        if not isinstance(texts, list) or len(texts) > 96 or not all(isinstance(t, str) for t in texts):
            return "Malformed input request: texts must be an array of at most 96 strings"
        if body.get("input_type") not in COHERE_INPUT_TYPES:
            return "Malformed input request: input_type must be one of " + ", ".join(COHERE_INPUT_TYPES)
        return None
    return f"The provided model identifier {model_id} is not an embedding model of this fake"


def invoke_answer(model_id: str, body: Json) -> web.Response:
    """The model's documented answer, with the input token count header InvokeModel sends."""
    if "titan-embed-text" in model_id:
        text = body["inputText"]
        vector = fake_vector(text, body.get("dimensions", 1024))
        tokens = len(text.split())
        answer: Json = {"embedding": vector, "inputTextTokenCount": tokens}
        answer["embeddingsByType"] = {"float": vector}
    else:
        texts = body["texts"]
        tokens = sum(len(t.split()) for t in texts)
        vectors = [fake_vector(t, COHERE_SIZE) for t in texts]
        answer = {"embeddings": vectors, "id": "fake-cohere-id", "response_type": "embeddings_floats"}
        answer["texts"] = texts
    headers = {"X-Amzn-Bedrock-Input-Token-Count": str(tokens), "X-Amzn-Bedrock-Invocation-Latency": "12"}
    return web.Response(body=orjson.dumps(answer), content_type="application/json", headers=headers)


# --- the fake -----------------------------------------------------------------------------------


class BedrockUpstream:
    """Scriptable fake. `app` is the aiohttp application to serve (e.g. with `aiohttp_server`)."""

    def __init__(
        self,
        *,
        access_key: str = TEST_ACCESS_KEY,
        secret_key: str = TEST_SECRET_KEY,
        session_token: str | None = None,
        bearer_token: str | None = TEST_BEARER_TOKEN,
        region: str = "us-east-1",
    ) -> None:
        self.credentials = ReadOnlyCredentials(access_key, secret_key, session_token)
        self.bearer_token = bearer_token
        self.region = region
        self.requests: list[Received] = []
        self.rejected: list[str] = []
        self._replies: deque[Reply] = deque()
        self.app = web.Application()
        self.app.router.add_post("/{tail:.*}", self._handle)

    def script(self, *replies: Reply) -> None:
        self._replies.extend(replies)

    @property
    def pending(self) -> int:
        return len(self._replies)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw_path = request.raw_path
        prefix, _, rest = raw_path.partition("/model/")
        encoded_model, _, operation = rest.partition("/")
        if prefix or operation not in ("converse", "converse-stream", "invoke", "count-tokens") or "?" in raw_path:
            return _aws_error(404, "UnknownOperationException", "no such operation")
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        received = Received(operation, unquote(encoded_model), raw_path, headers, body, {})
        denied = self._check_auth(received)
        if denied is not None:
            self.rejected.append(denied.headers["x-amzn-ErrorType"])
            return denied
        try:
            received.json = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _aws_error(400, "SerializationException", "body is not JSON")
        if operation == "count-tokens":
            received.validation_errors = bedrock_count_errors(received.model_id, received.json)
        elif operation == "invoke":
            received.validation_errors = invoke_errors(received.model_id, received.json)
        else:
            op_name = "ConverseStream" if operation == "converse-stream" else "Converse"
            received.validation_errors = validation_errors(
                op_name, received.model_id, received.json
            ) or reasoning_errors(received.json)
        self.requests.append(received)
        if received.validation_errors:
            return _aws_error(400, "ValidationException", received.validation_errors)
        if operation == "invoke" and not self._replies:
            return invoke_answer(received.model_id, received.json)
        if operation == "count-tokens" and not self._replies:
            return web.json_response(bedrock_count_answer(received.json))
        reply = self._replies.popleft() if self._replies else self._default(operation)
        return await _send(request, reply)

    def _default(self, operation: str) -> Reply:
        response = text_response("Hello from Bedrock")
        return Stream(stream_frames(response)) if operation == "converse-stream" else Answer(response)

    def _check_auth(self, received: Received) -> web.Response | None:
        header = received.headers.get("authorization", "")
        if header.startswith("Bearer "):
            token = header[len("Bearer ") :]
            if self.bearer_token is not None and hmac.compare_digest(token, self.bearer_token):
                return None
            return _aws_error(
                403, "UnrecognizedClientException", "The security token included in the request is invalid."
            )
        parts = _auth_parts(header)
        scope = parts.get("Credential", "").split("/")
        if len(scope) != 5 or "x-amz-date" not in received.headers:
            return _aws_error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        access_key, _date, region, service, _terminator = scope
        if access_key != self.credentials.access_key:
            return _aws_error(
                403, "UnrecognizedClientException", "The security token included in the request is invalid."
            )
        if (
            self.credentials.token is not None
            and received.headers.get("x-amz-security-token") != self.credentials.token
        ):
            return _aws_error(
                403, "UnrecognizedClientException", "The security token included in the request is invalid."
            )
        if region != self.region or service != "bedrock":
            return _aws_error(
                403, "InvalidSignatureException", f"Credential should be scoped to {self.region}/bedrock"
            )
        signed = parts.get("SignedHeaders", "").split(";")
        canonical, signature = recompute_signature(
            received.headers, received.raw_path, received.body, signed, self.credentials, region, service
        )
        received.canonical_request = canonical
        if not hmac.compare_digest(signature, parts.get("Signature", "")):
            return _aws_error(
                403,
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided.",
            )
        return None


def _aws_error(
    status: int, error_type: str, message: str, fields: Mapping[str, Any] | None = None
) -> web.Response:
    headers = {
        "x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/",
        "x-amzn-RequestId": "00000000-fake-0000-0000-000000000000",
    }
    body = orjson.dumps({"message": message, **(fields or {})})
    return web.Response(body=body, status=status, headers=headers, content_type="application/json")


async def _send(request: web.Request, reply: Reply) -> web.StreamResponse:
    if isinstance(reply, Answer):
        return web.Response(
            body=orjson.dumps(reply.body), status=reply.status, content_type="application/json"
        )
    if isinstance(reply, Error):
        if not reply.in_body:
            return _aws_error(reply.status, reply.error_type, reply.message, reply.fields)
        body = {
            "__type": f"com.amazon.coral.service#{reply.error_type}",
            "message": reply.message,
            **reply.fields,
        }
        return web.Response(body=orjson.dumps(body), status=reply.status, content_type="application/json")
    response = web.StreamResponse(headers={"Content-Type": EVENT_STREAM})
    await response.prepare(request)
    if isinstance(reply, Cut):
        await response.write(reply.data)
        assert request.transport is not None
        request.transport.close()
        return response
    data = b"".join(reply.frames)
    step = reply.chunk
    pieces = reply.frames if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    for piece in pieces:
        await response.write(piece)
    await response.write_eof()
    return response
