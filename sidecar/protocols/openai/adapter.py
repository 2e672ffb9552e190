"""OpenAI Chat Completions and every provider that speaks it: OpenAI, xAI Grok, Groq, Mistral,
OpenRouter, Cerebras, Ollama, vLLM (and the built-in `mock`, which answers in this format).

Provider differences are data in the cluster's `RequestRules` (from the registry):

- parameters a provider rejects are dropped (Groq: logprobs/logit_bias; Mistral: stream_options,
  user…; Cerebras: penalties), others renamed (Mistral: seed → random_seed,
  max_completion_tokens → max_tokens);
- message keys a provider rejects are dropped (Groq, Mistral: `name`);
- the `developer` role becomes `system` where the provider does not know it;
- `null`-valued optional fields are stripped.

Answers pass through unchanged unless they need normalising: Mistral's `model_length` finish
reason becomes `length`, `error` becomes `stop`; each provider's declared answer rules
(`answer_rules`: content lists, `reasoning` fields, `<think>` tags, vendor usage) make the message
OpenAI-shaped, reasoning text in `reasoning_content`. Error bodies arrive nested (`{"error": {...}}`),
flat (older vLLM, Mistral: `{"object": "error", "message": …}`) or as FastAPI `{"detail": …}`;
all become the OpenAI error shape, with numeric codes (OpenRouter) turned into strings.
SSE comment lines (OpenRouter's `: OPENROUTER PROCESSING`) are skipped; an `error` object inside a
stream becomes an in-stream error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from astra_sidecar.compiler.table import Agent, Cluster, RequestRules
from astra_sidecar.sidecar.errors import UpstreamMalformedError, UpstreamStreamError, network_failure
from astra_sidecar.sidecar.large_json import answer_json
from astra_sidecar.sidecar.protocols.base import (
    AuthMaterial,
    Body,
    Completion,
    Failure,
    UpstreamRequest,
    Usage,
)
from astra_sidecar.sidecar.protocols.openai.answer_rules import (
    THINK_TAGS,
    ThinkTagSplitter,
    add_reasoning,
    normalise_fields,
    normalise_message,
    rules_for,
    vendor_usage,
)
from astra_sidecar.sidecar.protocols.openai.wire import (
    TRANSIENT_STATUSES,
    client_status,
    openai_error_type,
    retry_after_seconds,
)
from astra_sidecar.sidecar.sse import SseDecoder

_FINISH_REASONS = {"model_length": "length", "error": "stop"}
_KNOWN_FINISH = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call", None})


def _apply_rules(body: Body, rules: RequestRules) -> Body:
    if _passes_through(rules) and None not in body.values():
        return body
    out: Body = {}
    for key, value in body.items():
        if value is None or key in rules.drop_params:
            continue
        out[rules.rename_params.get(key, key)] = value
    if rules.drop_message_keys or rules.developer_as_system:
        out["messages"] = [_message_for(m, rules) for m in body.get("messages", ())]
    return out


def _passes_through(rules: RequestRules) -> bool:
    """True when the cluster neither drops nor renames anything (e.g. OpenAI itself)."""
    return not (
        rules.drop_params or rules.rename_params or rules.drop_message_keys or rules.developer_as_system
    )


def _message_for(message: Any, rules: RequestRules) -> Any:
    if not isinstance(message, dict):
        return message
    if rules.developer_as_system and message.get("role") == "developer":
        message = {**message, "role": "system"}
    if rules.drop_message_keys and any(k in message for k in rules.drop_message_keys):
        message = {k: v for k, v in message.items() if k not in rules.drop_message_keys}
    return message


def auth_headers(cluster: Cluster, auth: AuthMaterial) -> dict[str, str]:
    if auth.token is None:
        return {}
    return {"Authorization": "Bearer " + auth.token.reveal()}


def usage_from(data: Mapping[str, Any]) -> Usage | None:
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens", 0) if isinstance(details, dict) else 0
    output = usage.get("completion_tokens_details")
    reasoning = output.get("reasoning_tokens", 0) if isinstance(output, dict) else 0
    return Usage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cached_tokens=int(cached or 0),
        reasoning_tokens=int(reasoning or 0),
    )


def _normalise_messages(data: dict[str, Any], rules: frozenset[str]) -> bool:
    changed = False
    for choice in data.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            changed = normalise_message(message, rules) or changed
    return changed


def _normalise_finish(data: dict[str, Any]) -> bool:
    """Map provider-specific finish reasons onto OpenAI's enum in place; True if anything changed."""
    changed = False
    for choice in data.get("choices") or ():
        if isinstance(choice, dict) and choice.get("finish_reason") not in _KNOWN_FINISH:
            choice["finish_reason"] = _FINISH_REASONS.get(choice["finish_reason"], "stop")
            changed = True
    return changed


def _error_fields(raw: bytes) -> tuple[str | None, str | None, str | None]:
    """(message, type, code) from any of the error body shapes OpenAI-compatible servers send."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None, None
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        return None, None, None
    error = data.get("error")
    if isinstance(error, dict):
        data = error
    elif isinstance(error, str):
        return error, None, None
    elif "detail" in data:
        return str(data["detail"])[:2000], None, None
    message = data.get("message")
    code = data.get("code")
    return (
        str(message) if message is not None else None,
        str(data["type"]) if isinstance(data.get("type"), str) else None,
        str(code) if code is not None else None,
    )


def failure_from_error_body(status: int, raw: bytes, headers: Mapping[str, str], *, provider: str) -> Failure:
    message, error_type, code = _error_fields(raw)
    out_status = client_status(status)
    quota = code == "insufficient_quota" or status == 402
    transient = status in TRANSIENT_STATUSES and not quota
    return Failure(
        status=out_status,
        error_type=error_type or openai_error_type(out_status),
        message=message or f"{provider} returned HTTP {status}",
        code=code,
        retryable=transient,
        breaker_counts=transient,
        retry_after_s=retry_after_seconds(headers),
    )


def _nothing_to_see(payload: bytes) -> bool:
    """A chunk with every `finish_reason` and `usage` null: relayed as it came, without walking it.

    Checked on the bytes as OpenAI-compatible servers write them (compact JSON); a key inside a
    string is escaped (`\\"usage\\"`) and never matches. Anything else is walked (`_relay`)."""
    if payload.count(b'"finish_reason":null') != payload.count(b'"finish_reason"'):
        return False
    usages = payload.count(b'"usage"')
    return not usages or payload.count(b'"usage":null') == usages


def _looks_whole(event: bytes) -> bool:
    """Whether one event's JSON has balanced braces and brackets and an even count of quotes, as
    an object cut short does not: a check that allocates nothing, where parsing every chunk of a
    long stream would cost more than relaying it. An event it refuses is fed (and so parsed),
    which costs only time when the refusal came from a brace or an escaped quote in a string."""
    return (
        event.count(b"{") == event.count(b"}")
        and event.count(b"[") == event.count(b"]")
        and not event.count(b'"') & 1
    )


class OpenAIStreamTranslator:
    """Relays OpenAI SSE chunks; parses each one to catch errors, usage and odd finish reasons."""

    __slots__ = ("_decoder", "_done", "_finished", "_provider", "_rules", "_splitters", "usage")

    def __init__(self, provider: str) -> None:
        self._decoder = SseDecoder()
        self._provider = provider
        self._rules = rules_for(provider)
        self._splitters: dict[int, ThinkTagSplitter] = {}
        self._done = False
        self._finished = False
        self.usage: Usage | None = None

    def feed(self, data: bytes) -> list[bytes]:
        return self._relay(self._decoder.feed(data))

    def relayed_as_is(self, data: bytes) -> bool:
        """Whether `data`, one read, is whole one-line `data: {…}` events that need nothing
        (`_nothing_to_see`, no error, no normalising rules for this provider) and none of them
        cut short (`_looks_whole`): the caller relays it as it came, as native streams are,
        without parsing it (`base.StreamTranslator`). Any other read is fed."""
        decoder = self._decoder
        if self._rules or self._done or not decoder.idle() or len(data) - 8 > decoder.max_bytes:
            return False
        if not (data.startswith(b"data: {") and data.endswith(b"}\n\n")) or b"\r" in data:
            return False
        if b'"error"' in data or not _nothing_to_see(data):
            return False
        if data.find(b"\n") == len(data) - 2:
            return _looks_whole(data)
        events = data[:-2].split(b"\n\n")
        return all(
            event.startswith(b"data: {") and event.endswith(b"}") and b"\n" not in event and _looks_whole(event)
            for event in events
        )

    def finish(self) -> list[bytes]:
        out = self._relay(self._decoder.flush())
        if not (self._done or self._finished):
            raise UpstreamStreamError(network_failure(f"{self._provider} stream ended before its last chunk"))
        return out

    def _relay(self, events: list[Any]) -> list[bytes]:
        out: list[bytes] = []
        for event in events:
            payload: bytes = event.data
            if self._done:
                continue
            if payload == b"[DONE]":
                self._done = True
                continue
            try:
                chunk = orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                raise UpstreamStreamError(
                    network_failure(f"{self._provider} sent a malformed stream chunk")
                ) from exc
            if not isinstance(chunk, dict):
                continue
            if chunk.get("error"):
                raise UpstreamStreamError(_stream_failure(chunk["error"], self._provider))
            if not self._rules and _nothing_to_see(payload):
                out.append(payload)  # well-formed (parsed above), and nothing in it to normalise
                continue
            if self._normalise_chunk(chunk):
                payload = orjson.dumps(chunk)
            if any(isinstance(c, dict) and c.get("finish_reason") for c in chunk.get("choices") or ()):
                self._finished = True
            usage = usage_from(chunk)
            if usage is not None:
                self.usage = usage
            out.append(payload)
        return out

    def _normalise_chunk(self, chunk: dict[str, Any]) -> bool:
        changed = _normalise_finish(chunk)
        changed = vendor_usage(chunk, self._rules) or changed
        if not self._rules:
            return changed
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict):
                changed = normalise_fields(delta, self._rules) or changed
                changed = self._split_tags(choice, delta) or changed
        return changed

    def _split_tags(self, choice: dict[str, Any], delta: dict[str, Any]) -> bool:
        """`<think>` tags in streamed content (rule `think_tags`), per choice."""
        if THINK_TAGS not in self._rules:
            return False
        index = choice.get("index", 0)
        splitter = self._splitters.setdefault(index if isinstance(index, int) else 0, ThinkTagSplitter())
        content = delta.get("content")
        text, reasoning = splitter.feed(content) if isinstance(content, str) else ("", "")
        if choice.get("finish_reason"):
            held_text, held_reasoning = splitter.flush()
            text, reasoning = text + held_text, reasoning + held_reasoning
        if not isinstance(content, str) and not (text or reasoning):
            return False
        if isinstance(content, str) or text:
            delta["content"] = text
        add_reasoning(delta, reasoning)
        return True


def _stream_failure(error: Any, provider: str) -> Failure:
    if not isinstance(error, dict):
        error = {"message": str(error)}
    code = error.get("code")
    status = code if isinstance(code, int) and 400 <= code <= 599 else 502
    return Failure(
        status=client_status(status),
        error_type=str(error.get("type") or openai_error_type(client_status(status))),
        message=str(error.get("message") or f"{provider} reported an error mid-stream"),
        code=str(code) if code is not None else None,
        retryable=status in TRANSIENT_STATUSES,
        breaker_counts=status in TRANSIENT_STATUSES,
    )


class OpenAICompatAdapter:
    def build_request(
        self, cluster: Cluster, agent: Agent, body: Body, auth: AuthMaterial
    ) -> UpstreamRequest:
        del agent
        headers = {"Content-Type": "application/json", **cluster.headers, **auth_headers(cluster, auth)}
        stream = bool(body.get("stream"))
        if stream:
            headers["Accept"] = "text/event-stream"
        return UpstreamRequest(
            url=cluster.base_url + "/chat/completions",
            headers=headers,
            body=orjson.dumps(_apply_rules(body, cluster.rules)),
            stream=stream,
        )

    def parse_response(self, cluster: Cluster, request: Body, raw: bytes) -> Completion:
        del request
        try:
            data = answer_json(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamMalformedError("not JSON", cluster.key, cluster.provider) from exc
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise UpstreamMalformedError("no choices", cluster.key, cluster.provider)
        changed = _normalise_finish(data)
        if _normalise_messages(data, rules_for(cluster.provider)) or changed:
            raw = orjson.dumps(data)
        return Completion(body=raw, usage=usage_from(data))

    def stream_translator(self, cluster: Cluster, request: Body) -> OpenAIStreamTranslator:
        del request
        return OpenAIStreamTranslator(cluster.provider)

    def classify_error(
        self, cluster: Cluster, status: int, headers: Mapping[str, str], raw: bytes
    ) -> Failure:
        return failure_from_error_body(status, raw, headers, provider=cluster.provider)
