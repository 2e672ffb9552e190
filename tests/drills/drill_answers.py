"""Checking and counting the drill's answers (see `tests.drills.drill`): each must be one
well-formed OpenAI answer, error body or SSE stream; `Tally` keeps what they said as counters."""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from openai.types.chat import ChatCompletion, ChatCompletionChunk

_STATUS_ALLOWED = frozenset({429, 500, 502, 503, 504})



class Problem(Exception):
    """One answer that breaks a rule (the message says which)."""


def _error_object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("error"), dict):
        raise Problem(f"not an OpenAI error body: {str(data)[:200]}")
    error: dict[str, Any] = data["error"]
    if not isinstance(error.get("message"), str) or not isinstance(error.get("type"), str):
        raise Problem(f"error body without message/type: {error}")
    if set(error) != {"message", "type", "param", "code"}:
        raise Problem(f"error body keys {sorted(error)}")
    if error.get("code") == "internal_error" or "Traceback" in error["message"]:
        raise Problem(f"the sidecar's own 500: {error}")
    return error


def check_plain(status: int, content_type: str, body: bytes) -> str:
    """Outcome label of a plain answer, or Problem."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(f"status {status}: body is not JSON: {body[:200]!r}") from exc
    if not content_type.startswith("application/json"):
        raise Problem(f"status {status}: content type {content_type}")
    if status == 200:
        completion = ChatCompletion.model_validate(data)
        if completion.choices[0].message.content != "chaos says hello":
            raise Problem(f"unexpected completion {data}")
        return "ok"
    if status not in _STATUS_ALLOWED:
        raise Problem(f"unexpected status {status}: {data}")
    error = _error_object(data)
    return f"error {status} {error.get('code')}"


def check_stream(body: bytes) -> str:
    """Outcome label of a 200 SSE answer, or Problem: valid chunks, then `[DONE]` or one error."""
    if not body.endswith(b"\n\n"):
        raise Problem(f"stream does not end with a whole event: {body[-120:]!r}")
    events = body[:-2].split(b"\n\n")
    finished = False
    for index, event in enumerate(events):
        if not event.startswith(b"data: ") or b"\n" in event:
            raise Problem(f"event {index} is not one data line: {event[:200]!r}")
        payload = event[6:]
        last = index == len(events) - 1
        if payload == b"[DONE]":
            if not last:
                raise Problem("[DONE] before the end of the stream")
            if not finished:
                raise Problem("[DONE] without a finish_reason before it")
            return "ok stream"
        data = orjson.loads(payload)
        if "error" in data:
            if not last:
                raise Problem("an error event that is not the last event")
            error = _error_object(data)
            return f"stream error {error.get('code')}"
        chunk = ChatCompletionChunk.model_validate(data)
        finished = finished or any(choice.finish_reason for choice in chunk.choices)
    raise Problem(f"stream ended without [DONE] or an error event: {body[-200:]!r}")


@dataclass
class Tally:
    """What the answers said, kept as counters (nothing per request) so memory stays flat."""

    sent: int = 0
    answered: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    attempts: int = 0
    attempts_max: dict[str, int] = field(default_factory=dict)
    attempt_histogram: Counter[int] = field(default_factory=Counter)
    served_by: Counter[str] = field(default_factory=Counter)
    latencies: array[float] = field(default_factory=lambda: array("d"))
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < 20:
            self.problems.append(text)
