"""OpenAI `chat.completion.chunk` payloads → the Responses API's typed SSE events
(https://platform.openai.com/docs/api-reference/responses-streaming), each `event: <type>` with
a `sequence_number` that starts at 0 and grows by one per event:

    response.created, response.in_progress
    per text answer: response.output_item.added (message), response.content_part.added,
        response.output_text.delta…, response.output_text.done, response.content_part.done,
        response.output_item.done
    per tool call: response.output_item.added (function_call),
        response.function_call_arguments.delta…, response.function_call_arguments.done,
        response.output_item.done
    response.completed (or response.incomplete, for a length/content-filter stop), with the
        whole Response object and its usage

A failure after the first event is a final `response.failed` (`failure_event`), numbered after
the last event of the same stream: the encoder of the running request is found through a
context variable (the relay encodes and fails a stream in the same task).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

import orjson

from astra_sidecar.sidecar.protocols.base import Failure
from astra_sidecar.sidecar.protocols.codec import encode_chunks
from astra_sidecar.sidecar.protocols.responses.response import (
    function_item,
    message_item,
    new_id,
    response_object,
    text_part,
    usage_of,
)
from astra_sidecar.sidecar.protocols.responses.tools import ToolNames
from astra_sidecar.sidecar.sse import encode_event

Json = dict[str, Any]

_CURRENT: contextvars.ContextVar[ResponsesStreamEncoder | None] = contextvars.ContextVar(
    "astra_responses_stream", default=None
)


class _Item:
    """One output item being streamed: a message (text) or a function call."""

    __slots__ = ("arguments", "call_id", "id", "index", "kind", "name", "names", "text")

    def __init__(self, kind: str, index: int, names: ToolNames, call_id: str = "", name: str = "") -> None:
        self.kind, self.index, self.names, self.call_id, self.name = kind, index, names, call_id, name
        self.id = new_id("msg" if kind == "message" else "fc")
        self.text = ""
        self.arguments = ""

    def whole(self, status: str = "completed") -> Json:
        if self.kind == "message":
            return message_item(self.id, [text_part(self.text)] if status == "completed" else [], status)
        return function_item(self.id, self.call_id, self.name, self.arguments, self.names, status)


class ResponsesStreamEncoder:
    """State of one translated stream (see the module docstring)."""

    def __init__(self, echo: Json, names: ToolNames, on_done: Callable[[Json], None] | None = None) -> None:
        self._echo = echo
        self._names = names
        self._on_done = on_done
        self._id = new_id("resp")
        self._seq = 0
        self._model = ""
        self._started = False
        self._open: _Item | None = None
        self._tools: dict[int, _Item] = {}
        self._done: list[Json] = []
        self._finish: str | None = None
        self._usage: Json | None = None
        _CURRENT.set(self)

    def _event(self, kind: str, data: Json) -> bytes:
        payload = {"type": kind, "sequence_number": self._seq, **data}
        self._seq += 1
        return encode_event(kind, orjson.dumps(payload))

    def _response(self, status: str, error: Json | None = None) -> Json:
        output = list(self._done)
        return response_object(
            self._id, self._echo, model=self._model, status=status, output=output, usage=self._usage,
            finish=self._finish, error=error,
        )  # fmt: skip

    def encode(self, payloads: list[bytes]) -> bytes:
        return encode_chunks(payloads, self._chunk)

    def close(self) -> bytes:
        out = self._start()
        out.extend(self._close_item())
        response = self._response("completed")
        if self._on_done is not None:
            self._on_done(response)
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        out.append(self._event(kind, {"response": response}))
        return b"".join(out)

    def failed(self, failure: Failure) -> bytes:
        out = self._start()
        error = {"code": failure.code or failure.error_type, "message": failure.message}
        out.append(self._event("response.failed", {"response": self._response("failed", error)}))
        return b"".join(out)

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        response = self._response("in_progress")
        return [
            self._event("response.created", {"response": response}),
            self._event("response.in_progress", {"response": response}),
        ]

    def _chunk(self, chunk: Json) -> list[bytes]:
        if isinstance(chunk.get("model"), str) and not self._model:
            self._model = chunk["model"]
        out = self._start()
        if isinstance(chunk.get("usage"), dict):
            self._usage = usage_of(chunk["usage"])
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            out.extend(self._text(delta.get("content")))
            out.extend(self._text(delta.get("refusal")))
            for call in delta.get("tool_calls") or ():
                out.extend(self._tool(call))
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
                out.extend(self._close_item())
        return out

    def _where(self, item: _Item) -> Json:
        return {"item_id": item.id, "output_index": item.index}

    def _open_item(self, item: _Item) -> list[bytes]:
        out = self._close_item()
        item.index = len(self._done)
        self._open = item
        added = {"output_index": item.index, "item": item.whole("in_progress")}
        out.append(self._event("response.output_item.added", added))
        if item.kind == "message":
            part = {**self._where(item), "content_index": 0, "part": text_part("")}
            out.append(self._event("response.content_part.added", part))
        return out

    def _close_item(self) -> list[bytes]:
        item, self._open = self._open, None
        if item is None:
            return []
        where = self._where(item)
        out: list[bytes] = []
        if item.kind == "message":
            text = {**where, "content_index": 0, "text": item.text, "logprobs": []}
            out.append(self._event("response.output_text.done", text))
            part = {**where, "content_index": 0, "part": text_part(item.text)}
            out.append(self._event("response.content_part.done", part))
        else:
            done = {**where, "name": item.names.original(item.name)[1], "arguments": item.arguments}
            out.append(self._event("response.function_call_arguments.done", done))
        whole = item.whole()
        self._done.append(whole)
        out.append(self._event("response.output_item.done", {"output_index": item.index, "item": whole}))
        return out

    def _text(self, text: Any) -> list[bytes]:
        if not isinstance(text, str) or not text:
            return []
        out: list[bytes] = []
        if self._open is None or self._open.kind != "message":
            out = self._open_item(_Item("message", 0, self._names))
        item = self._open
        assert item is not None
        item.text += text
        delta = {**self._where(item), "content_index": 0, "delta": text, "logprobs": []}
        out.append(self._event("response.output_text.delta", delta))
        return out

    def _tool(self, call: Any) -> list[bytes]:
        if not isinstance(call, dict):
            return []
        index = call.get("index", 0)
        function = call.get("function") or {}
        out: list[bytes] = []
        item = self._tools.get(index)
        if item is None:
            item = _Item(
                "function_call", 0, self._names, call.get("id") or new_id("call"), function.get("name") or ""
            )
            self._tools[index] = item
            out = self._open_item(item)
        elif self._open is not item:
            return []  # a late fragment of a closed call cannot be placed (see anthropic ingress_stream)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            item.arguments += arguments
            delta = {**self._where(item), "delta": arguments}
            out.append(self._event("response.function_call_arguments.delta", delta))
        return out


def failure_event(failure: Failure) -> bytes:
    """The final `response.failed` event of the running request's stream."""
    encoder = _CURRENT.get()
    if encoder is None:
        encoder = ResponsesStreamEncoder({}, ToolNames())
    return encoder.failed(failure)
