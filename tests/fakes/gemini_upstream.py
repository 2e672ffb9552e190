"""A fake Gemini upstream: a real aiohttp server speaking the Gemini REST wire format.

Both URL shapes are served:

- AI Studio: ``POST /v1beta/models/{model}:generateContent`` and
  ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` (auth ``x-goog-api-key``);
- Vertex AI: ``POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:…``
  (auth ``Authorization: Bearer …``).
- Token counts: ``:countTokens`` on both surfaces (`count_apis.gemini_count_answer`).
- Embeddings: AI Studio ``:embedContent`` / ``:batchEmbedContents`` and Vertex ``:predict``, answered
  (with nothing scripted) as the docs show, with deterministic vectors (`embed_answer`).

Every request is recorded (`FakeGemini.requests`). Answers are scripted per test with
`enqueue(...)` (first in, first out); with nothing queued the fake echoes the last user text, as
one JSON answer or as an SSE stream of deltas. Replies:

- `JsonReply(body, status)`: one JSON body (a `GenerateContentResponse` or a Google error);
- `SseReply(events, piece_size=…, abort=…)`: ``data:`` events, written in pieces of `piece_size`
  bytes (awkward boundaries), then a normal EOF (Gemini has no terminator) — or, with `abort`, the
  connection is dropped mid-body;
- `RawReply(body, status, content_type)`: arbitrary bytes (an HTML 502 from a proxy…).

The builders below produce the shapes the real service sends: function calls without ``id`` (as
AI Studio does), ``thoughtSignature`` on the first call part, usage with cached and thoughts
tokens, safety blocks and Google RPC error bodies with ``RetryInfo``/``QuotaFailure``/``ErrorInfo``.

`FakeGoogleOAuth` is Google's OAuth 2.0 token endpoint for service accounts: it verifies the
signed JWT-bearer assertion against the test's public key and issues numbered access tokens.
Mounted on a `FakeGemini` (``oauth=``), it serves ``POST /token`` and the Vertex routes accept
exactly the tokens it issued. `write_service_account` writes a real service-account key file.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import google.auth.jwt
import orjson
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.count_apis import gemini_count_answer

Json = dict[str, Any]

DEFAULT_MODEL_VERSION = "gemini-2.5-flash"


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    surface: str  # "ai_studio" | "vertex"
    model: str
    method: str  # "generateContent" | "streamGenerateContent"
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Json
    project: str | None = None
    location: str | None = None


@dataclass(frozen=True, slots=True)
class JsonReply:
    body: Any
    status: int = 200


@dataclass(frozen=True, slots=True)
class SseReply:
    events: Sequence[Any]
    piece_size: int | None = None
    abort: bool = False
    status: int = 200


@dataclass(frozen=True, slots=True)
class RawReply:
    body: bytes
    status: int
    content_type: str = "text/html"


Reply = JsonReply | SseReply | RawReply


# --- response builders ------------------------------------------------------------------------


def usage_metadata(
    prompt: int, candidates: int, *, cached: int = 0, thoughts: int = 0, tool_use: int = 0
) -> Json:
    meta: Json = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts + tool_use,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if cached:
        meta["cachedContentTokenCount"] = cached
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    if tool_use:
        meta["toolUsePromptTokenCount"] = tool_use
    return meta


def candidate(parts: list[Json], finish: str | None = "STOP", index: int = 0) -> Json:
    out: Json = {"content": {"role": "model", "parts": parts}, "index": index}
    if finish is not None:
        out["finishReason"] = finish
    return out


def response(
    candidates: list[Json],
    *,
    usage: Json | None = None,
    response_id: str | None = "resp-1",
    model_version: str = DEFAULT_MODEL_VERSION,
) -> Json:
    out: Json = {"candidates": candidates, "modelVersion": model_version}
    if usage is not None:
        out["usageMetadata"] = usage
    if response_id is not None:
        out["responseId"] = response_id
    return out


def text_response(
    text: str, *, finish: str = "STOP", usage: Json | None = None, response_id: str = "resp-1"
) -> Json:
    return response([candidate([{"text": text}], finish)], usage=usage, response_id=response_id)


def call_parts(
    calls: Sequence[tuple[str, Json]], *, signature: str | None = None, ids: Sequence[str] | None = None
) -> list[Json]:
    """functionCall parts without ids (AI Studio style) unless `ids`; the signature on the first."""
    parts: list[Json] = []
    for i, (name, args) in enumerate(calls):
        call: Json = {"name": name, "args": args}
        if ids is not None:
            call["id"] = ids[i]
        part: Json = {"functionCall": call}
        if signature is not None and i == 0:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def function_call_response(
    calls: Sequence[tuple[str, Json]],
    *,
    text: str | None = None,
    signature: str | None = None,
    ids: Sequence[str] | None = None,
    usage: Json | None = None,
    response_id: str = "resp-1",
) -> Json:
    parts = ([{"text": text}] if text else []) + call_parts(calls, signature=signature, ids=ids)
    return response([candidate(parts)], usage=usage, response_id=response_id)


def blocked_prompt_response(reason: str = "SAFETY", usage: Json | None = None) -> Json:
    out: Json = {
        "promptFeedback": {"blockReason": reason, "safetyRatings": []},
        "modelVersion": DEFAULT_MODEL_VERSION,
    }
    if usage is not None:
        out["usageMetadata"] = usage
    return out


def safety_response(usage: Json | None = None) -> Json:
    blocked: Json = {
        "finishReason": "SAFETY",
        "index": 0,
        "safetyRatings": [
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
        ],
    }
    return response([blocked], usage=usage)


def google_error(
    code: int,
    status: str,
    message: str,
    *,
    retry_delay: str | None = None,
    quota_id: str | None = None,
    reason: str | None = None,
    wrapped: bool = False,
) -> Any:
    details: list[Json] = []
    if reason is not None:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
            }
        )
    if quota_id is not None:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaMetric": "generativelanguage.googleapis.com/x", "quotaId": quota_id}],
            }
        )
    if retry_delay is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay})
    error: Json = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    body = {"error": error}
    return [body] if wrapped else body


def text_stream(pieces: Sequence[str], *, usage: Json | None = None, finish: str = "STOP") -> list[Json]:
    """One chunk per text delta; the last carries finishReason; usage on every chunk (as Gemini)."""
    events: list[Json] = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        events.append(response([candidate([{"text": piece}], finish if last else None)], usage=usage))
    return events


# --- Google OAuth (service accounts) ----------------------------------------------------------

#: google-auth signs service-account assertions for this audience, whatever the token_uri.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
SERVICE_ACCOUNT_EMAIL = "astra-test@proj-1.iam.gserviceaccount.com"


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_service_account(path: Path, key: rsa.RSAPrivateKey, token_uri: str) -> Path:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "proj-1",
        "private_key_id": "key-1",
        "private_key": pem,
        "client_email": SERVICE_ACCOUNT_EMAIL,
        "client_id": "1234567890",
        "token_uri": token_uri,
    }
    path.write_text(json.dumps(info))
    return path


@dataclass(slots=True)
class FakeGoogleOAuth:
    """The token endpoint: JWT-bearer grant in, ``ya29.token-N`` out (or an OAuth error)."""

    public_key: rsa.RSAPublicKey
    status: int = 200
    expires_in: int = 3600
    assertions: list[Json] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        form = parse_qs((await request.read()).decode())
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        pem = self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        decode: Any = google.auth.jwt.decode
        self.assertions.append(decode(form["assertion"][0], certs=pem, audience=GOOGLE_TOKEN_AUDIENCE))
        if self.status != 200:
            body = {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            return web.json_response(body, status=self.status)
        token = f"ya29.token-{len(self.assertions)}"
        self.issued.append(token)
        return web.json_response(
            {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self.handle)
        return app


# --- the server ------------------------------------------------------------------------------


@dataclass(slots=True)
class FakeGemini:
    """Scriptable fake. `api_key` / `bearer`, when set, are required on AI Studio / Vertex calls;
    with `oauth`, Vertex calls need a token it issued."""

    api_key: str | None = None
    bearer: str | None = None
    oauth: FakeGoogleOAuth | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    #: Gemini 3's rule: the first functionCall part of each model turn must carry its signature.
    require_signatures: bool = False
    _script: deque[Reply] = field(default_factory=deque)

    def enqueue(self, *replies: Reply) -> None:
        self._script.extend(replies)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1beta/models/{target}", self._ai_studio)
        app.router.add_post(
            "/v1/projects/{project}/locations/{location}/publishers/google/models/{target}", self._vertex
        )
        if self.oauth is not None:
            app.router.add_post("/token", self.oauth.handle)
        return app

    async def _ai_studio(self, request: web.Request) -> web.StreamResponse:
        if self.api_key is not None and request.headers.get("x-goog-api-key") != self.api_key:
            body = google_error(400, "INVALID_ARGUMENT", "API key not valid.", reason="API_KEY_INVALID")
            return web.json_response(body, status=400)
        return await self._serve(request, "ai_studio")

    def _bearer_ok(self, authorization: str | None) -> bool:
        if self.bearer is not None:
            return authorization == f"Bearer {self.bearer}"
        if self.oauth is not None:
            return authorization is not None and authorization.removeprefix("Bearer ") in self.oauth.issued
        return True

    async def _vertex(self, request: web.Request) -> web.StreamResponse:
        if not self._bearer_ok(request.headers.get("Authorization")):
            body = google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
            return web.json_response(body, status=401)
        return await self._serve(request, "vertex")

    async def _serve(self, request: web.Request, surface: str) -> web.StreamResponse:
        model, _, method = request.match_info["target"].partition(":")
        if method in EMBED_METHODS[surface]:
            return await self._embed(request, surface, model, method)
        if method == "countTokens":
            return await self._count(request, surface, model)
        if method not in ("generateContent", "streamGenerateContent"):
            return web.json_response(google_error(404, "NOT_FOUND", f"unknown method {method}"), status=404)
        body = orjson.loads(await request.read())
        self.requests.append(
            RecordedRequest(
                surface=surface,
                model=model,
                method=method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=body,
                project=request.match_info.get("project"),
                location=request.match_info.get("location"),
            )
        )
        problem = missing_signature(body) if self.require_signatures else None
        if problem is not None:
            return web.json_response(google_error(400, "INVALID_ARGUMENT", problem), status=400)
        streaming = method == "streamGenerateContent"
        reply = self._script.popleft() if self._script else _echo(body, streaming)
        return await _send(request, reply)


    async def _count(self, request: web.Request, surface: str, model: str) -> web.StreamResponse:
        """`:countTokens`, answered as `count_apis.gemini_count_answer` (a script entry wins)."""
        body = orjson.loads(await request.read())
        self.requests.append(
            RecordedRequest(
                surface=surface, model=model, method="countTokens", path=request.path, query=dict(request.query),
                headers=dict(request.headers), body=body, project=request.match_info.get("project"),
                location=request.match_info.get("location"),
            )
        )  # fmt: skip
        if self._script:
            return await _send(request, self._script.popleft())
        status, answer = gemini_count_answer(surface, model, body)
        return web.json_response(answer, status=status)

    async def _embed(self, request: web.Request, surface: str, model: str, method: str) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.requests.append(
            RecordedRequest(
                surface=surface, model=model, method=method, path=request.path, query=dict(request.query),
                headers=dict(request.headers), body=body, project=request.match_info.get("project"),
                location=request.match_info.get("location"),
            )
        )  # fmt: skip
        if self._script:
            return await _send(request, self._script.popleft())
        answer = embed_answer(model, method, body)
        status = 400 if "error" in answer else 200
        return web.json_response(answer, status=status)


# --- embeddings: AI Studio embedContent / batchEmbedContents (ai.google.dev/api/embeddings) and
# Vertex AI `:predict` (cloud.google.com/vertex-ai/generative-ai/docs/model-reference/text-embeddings-api)

EMBED_METHODS = {"ai_studio": ("embedContent", "batchEmbedContents"), "vertex": ("predict",)}
EMBED_SIZE = 3072  # gemini-embedding-001's default output size


def fake_values(text: str, size: int) -> list[float]:
    """A deterministic vector, exact in float32 (multiples of 1/8)."""
    return [(len(text) + i) / 8 for i in range(size)]


def _content_text(content: Any) -> str | None:
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts:
        return None
    if not all(isinstance(p, dict) and "text" in p for p in parts):
        return None
    return " ".join(p["text"] for p in parts)


def _studio_embedding(model: str, request: Json) -> Json:
    if request.get("model", f"models/{model}") != f"models/{model}":
        message = "Model in the request does not match the model in the URL."
        return google_error(400, "INVALID_ARGUMENT", message)
    text = _content_text(request.get("content"))
    if text is None:
        return google_error(400, "INVALID_ARGUMENT", "content.parts must hold text parts.")
    return {"values": fake_values(text, request.get("outputDimensionality", EMBED_SIZE))}


def embed_answer(model: str, method: str, body: Json) -> Json:
    """The documented answer (or Google's error) for one embeddings call."""
    if method == "predict":
        predictions = []
        for instance in body.get("instances", []):
            size = body.get("parameters", {}).get("outputDimensionality", EMBED_SIZE)
            text = instance["content"]
            stats = {"truncated": False, "token_count": len(text.split())}
            predictions.append({"embeddings": {"values": fake_values(text, size), "statistics": stats}})
        return {"predictions": predictions, "metadata": {"billableCharacterCount": 0}}
    if method == "embedContent":
        one = _studio_embedding(model, body)
        return one if "error" in one else {"embedding": one}
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        return google_error(400, "INVALID_ARGUMENT", "requests must not be empty.")
    embeddings = [_studio_embedding(model, r) for r in requests]
    errors = [e for e in embeddings if "error" in e]
    return errors[0] if errors else {"embeddings": embeddings}


def missing_signature(body: Json) -> str | None:
    """The error Gemini 3 returns when a model turn's first function call lost its
    `thoughtSignature` (https://ai.google.dev/gemini-api/docs/thought-signatures)."""
    for i, content in enumerate(body.get("contents") or ()):
        calls = [p for p in content.get("parts") or () if "functionCall" in p]
        if content.get("role") == "model" and calls and not calls[0].get("thoughtSignature"):
            return f"Function call is missing a thought_signature in functionCall parts (contents[{i}])."
    return None


def thought_part(text: str, signature: str | None = None) -> Json:
    """A thought summary part, as Gemini sends it with `includeThoughts: true`."""
    part: Json = {"text": text, "thought": True}
    if signature is not None:
        part["thoughtSignature"] = signature
    return part


def _last_user_text(body: Json) -> str:
    for content in reversed(body.get("contents") or []):
        if content.get("role") == "user":
            texts = [p["text"] for p in content.get("parts", []) if "text" in p]
            if texts:
                return " ".join(texts)
    return ""


def _echo(body: Json, streaming: bool) -> Reply:
    text = "echo: " + _last_user_text(body)
    usage = usage_metadata(7, 3)
    if streaming:
        middle = len(text) // 2
        return SseReply(text_stream([text[:middle], text[middle:]], usage=usage))
    return JsonReply(text_response(text, usage=usage))


def encode_events(events: Sequence[Any]) -> bytes:
    out = b""
    for event in events:
        out += event if isinstance(event, bytes) else b"data: " + orjson.dumps(event) + b"\r\n\r\n"
    return out


async def _send(request: web.Request, reply: Reply) -> web.StreamResponse:
    if isinstance(reply, JsonReply):
        return web.Response(
            body=orjson.dumps(reply.body), status=reply.status, content_type="application/json"
        )
    if isinstance(reply, RawReply):
        return web.Response(body=reply.body, status=reply.status, content_type=reply.content_type)
    response = web.StreamResponse(status=reply.status, headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    data = encode_events(reply.events)
    size = reply.piece_size or len(data) or 1
    for start in range(0, len(data), size):
        await response.write(data[start : start + size])
        await asyncio.sleep(0)
    if reply.abort:
        assert request.transport is not None
        request.transport.abort()
        return response
    await response.write_eof()
    return response
