"""The agent's tool policy applied to answers: tool calls the model makes for tools the agent does
not allow (`tools.allow` / `tools.deny`) never reach the client.

The request side (`astra_sidecar.sidecar.policy.agent`) removes refused tools before the model sees them; a model can
still name one (it hallucinates, or learnt the name from the conversation). This guard works on
the OpenAI form of every answer, so it covers every ingress and every provider:

- **plain answers**: blocked calls leave `message.tool_calls` (and a legacy `function_call`
  goes); the message's text gains a refusal the client can read, one line per blocked call
  (`Tool call "NAME" was blocked by this gateway's policy.`, after a blank line when the model
  also wrote text); when no call is left, `finish_reason` `tool_calls`/`function_call` becomes
  `stop`.
- **streams**: text is relayed at once; each tool call's fragments are held (by `index`, per
  choice) until the call is complete — the next call starts, its choice finishes, or the stream
  ends — then passed on (the same fragments, its `index` renumbered so passed calls stay 0..n-1)
  or replaced by the refusal text. A late fragment of a call already decided follows that
  decision. The finish reason is fixed as for plain answers.

Every block calls `on_block(name)` (the caller counts it in
`astra_tool_calls_blocked_total{agent,tool}` and logs one line, never the arguments).

Native pass-through (an Anthropic or Gemini client on a cluster of the same format) relays the
upstream's bytes unchanged and is not filtered here: agents with a restrictive policy (an allow
list, or a non-empty deny list) are therefore always served on the translated path
(`astra_sidecar.sidecar.serving.calls.ForeignCall`), and agents without one keep the native fast path and pay
nothing for this module.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from astra_sidecar.compiler.table import ToolPolicy
from astra_sidecar.sidecar.metrics import Metrics

log = logging.getLogger("astra.toolguard")

Json = dict[str, Any]
OnBlock = Callable[[str], None]

_FINISH_WITH_CALLS = frozenset({"tool_calls", "function_call"})
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.:-]")
_MAX_LABELS = 64
_FUNCTION = "function_call"


def refusal(name: str) -> str:
    return f'Tool call "{name}" was blocked by this gateway\'s policy.'


def printable(name: str) -> str:
    """The name as it may appear in a log line or a metric label (64 safe characters at most)."""
    return _SAFE_NAME.sub("?", name[:64]) or "?"


def _function_name(function: Any) -> str:
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) else ""


def _name_of(call: Any) -> str:
    """The function name of a tool call (or of a fragment that carries it), else ""."""
    return _function_name(call.get("function") if isinstance(call, dict) else None)


class ToolGuard:
    """One agent's guard (built with its policy when the agent refuses some tool)."""

    __slots__ = ("_labels", "agent_id", "policy")

    def __init__(self, agent_id: str, policy: ToolPolicy) -> None:
        self.agent_id = agent_id
        self.policy = policy
        self._labels: set[str] = set(policy.deny)

    def label(self, name: str) -> str:
        """The metric label for a blocked name: the name, unless 64 others were seen (then `other`)."""
        safe = printable(name)
        if safe not in self._labels and len(self._labels) >= _MAX_LABELS + len(self.policy.deny):
            return "other"
        self._labels.add(safe)
        return safe

    def reporter(self, metrics: Metrics, request_id: str) -> OnBlock:
        def blocked(name: str) -> None:
            safe = printable(name)
            metrics.tool_calls_blocked.labels(self.agent_id, self.label(name)).inc()
            log.warning(
                "tool call %s blocked by the agent's tool policy",
                safe,
                extra={"agent": self.agent_id, "tool": safe, "request_id": request_id},
            )

        return blocked

    def completion(self, raw: bytes, on_block: OnBlock) -> bytes:
        """A whole OpenAI answer with refused calls replaced by refusals (the same bytes if none)."""
        if b"tool_calls" not in raw and b"function_call" not in raw:
            return raw
        data = orjson.loads(raw)
        choices = data.get("choices") if isinstance(data, dict) else None
        changed = False
        for choice in choices if isinstance(choices, list) else ():
            if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
                changed = self._guard_choice(choice, on_block) or changed
        return orjson.dumps(data) if changed else raw

    def _guard_choice(self, choice: Json, on_block: OnBlock) -> bool:
        message: Json = choice["message"]
        refused: list[str] = []
        calls = message.get("tool_calls")
        if isinstance(calls, list) and calls:
            kept = [call for call in calls if self.policy.permits(_name_of(call))]
            if len(kept) < len(calls):
                refused += [_name_of(call) for call in calls if call not in kept]
                if kept:
                    message["tool_calls"] = kept
                else:
                    del message["tool_calls"]
        legacy = message.get(_FUNCTION)
        if isinstance(legacy, dict) and not self.policy.permits(_function_name(legacy)):
            refused.append(_function_name(legacy))
            del message[_FUNCTION]
        if not refused:
            return False
        for name in refused:
            on_block(name)
        text = "\n".join(refusal(name) for name in refused)
        content = message.get("content")
        message["content"] = f"{content}\n\n{text}" if isinstance(content, str) and content else text
        if choice.get("finish_reason") in _FINISH_WITH_CALLS and not (
            message.get("tool_calls") or message.get(_FUNCTION)
        ):
            choice["finish_reason"] = "stop"
        return True

    def stream(self, on_block: OnBlock) -> StreamGuard:
        return StreamGuard(self.policy, on_block)


def _fragments(delta: Json) -> list[tuple[int | str, Json]]:
    """(key, fragment) for each call fragment of a delta: tool calls by `index`, a legacy
    `function_call` under its own key."""
    fragments = delta.get("tool_calls")
    entries: list[tuple[int | str, Json]] = []
    for position, fragment in enumerate(fragments if isinstance(fragments, list) else ()):
        if isinstance(fragment, dict):
            key = fragment.get("index", position)
            entries.append((key if isinstance(key, int) else position, fragment))
    if isinstance(delta.get(_FUNCTION), dict):
        entries.append((_FUNCTION, delta[_FUNCTION]))
    return entries


@dataclass(slots=True)
class _HeldCall:
    """The fragments of one call not yet decided: (chunk envelope, fragment) pairs."""

    key: int | str
    name: str = ""
    fragments: list[tuple[Json, Json]] = field(default_factory=list)

    def add(self, envelope: Json, fragment: Json) -> None:
        if not self.name:
            self.name = _function_name(fragment) if self.key == _FUNCTION else _name_of(fragment)
        self.fragments.append((envelope, fragment))


@dataclass(slots=True)
class _Choice:
    held: _HeldCall | None = None
    decided: dict[int | str, int | None] = field(default_factory=dict)  # key → new index, None: blocked
    passed: int = 0
    function_passed: bool = False
    blocked: int = 0
    text_sent: bool = False


class StreamGuard:
    """Fed OpenAI chunk payloads in order, returns them with refused calls replaced (see the
    module docstring); `finish()` at the end of the upstream stream decides calls still held."""

    __slots__ = ("_choices", "_on_block", "_policy")

    def __init__(self, policy: ToolPolicy, on_block: OnBlock) -> None:
        self._policy = policy
        self._on_block = on_block
        self._choices: dict[int, _Choice] = {}

    def feed(self, payloads: list[bytes]) -> list[bytes]:
        out: list[bytes] = []
        for payload in payloads:
            out += self._chunk(payload)
        return out

    def finish(self) -> list[bytes]:
        out: list[bytes] = []
        for index, state in sorted(self._choices.items()):
            if state.held is not None:
                out += self._decide(index, state)
        return out

    def _chunk(self, payload: bytes) -> list[bytes]:
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return [payload]  # not a chunk the guard can read (translators never send one)
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if not isinstance(choices, list) or not choices:
            return [payload]
        envelope = {k: (None if k == "usage" else v) for k, v in chunk.items() if k != "choices"}
        before: list[bytes] = []
        kept: list[Any] = []
        changed = False
        for position, choice in enumerate(choices):
            if not isinstance(choice, dict):
                kept.append(choice)
                continue
            index = choice.get("index", position)
            index = index if isinstance(index, int) else position
            new, decided = self._choice(index, choice, envelope)
            before += decided
            changed = changed or new is not choice
            if new is not None:
                kept.append(new)
        if not changed:
            return [*before, payload]
        if kept or isinstance(chunk.get("usage"), dict):
            before.append(orjson.dumps({**chunk, "choices": kept}))
        return before

    def _choice(self, index: int, choice: Json, envelope: Json) -> tuple[Json | None, list[bytes]]:
        """(the choice as relayed now — None to drop it, decided calls to send before it)."""
        state = self._choices.setdefault(index, _Choice())
        delta = choice.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        out: list[bytes] = []
        held = bool(delta.get("tool_calls")) or isinstance(delta.get(_FUNCTION), dict)
        if held:
            delta, out = self._hold(index, state, delta, envelope)
            choice = {**choice, "delta": delta}
        content = delta.get("content")
        if isinstance(content, str) and content:
            state.text_sent = True
        finish = choice.get("finish_reason")
        if not finish:
            # A chunk that carried only fragments now held says nothing: it is dropped.
            empty = held and not delta and not choice.get("logprobs")
            return (None if empty else choice), out
        if state.held is not None:
            out += self._decide(index, state)
        if finish in _FINISH_WITH_CALLS and state.blocked and not (state.passed or state.function_passed):
            choice = {**choice, "finish_reason": "stop"}
        return choice, out

    def _hold(self, index: int, state: _Choice, delta: Json, envelope: Json) -> tuple[Json, list[bytes]]:
        """Takes the call fragments out of `delta`; returns the rest and any calls decided now."""
        out: list[bytes] = []
        late: list[Json] = []
        for key, fragment in _fragments(delta):
            if key in state.decided:
                new_index = state.decided[key]
                if new_index is not None and key != _FUNCTION:
                    late.append({**fragment, "index": new_index})
                elif new_index is not None:
                    out.append(self._emit(envelope, index, {_FUNCTION: fragment}))
                continue
            if state.held is not None and state.held.key != key:
                out += self._decide(index, state)
            if state.held is None:
                state.held = _HeldCall(key)
            state.held.add(envelope, fragment)
        rest = {k: v for k, v in delta.items() if k not in ("tool_calls", _FUNCTION)}
        if late:
            rest["tool_calls"] = late
        return rest, out

    def _decide(self, index: int, state: _Choice) -> list[bytes]:
        held, state.held = state.held, None
        assert held is not None
        if self._policy.permits(held.name):
            if held.key == _FUNCTION:
                state.decided[held.key] = 0
                state.function_passed = True
                return [self._emit(env, index, {_FUNCTION: frag}) for env, frag in held.fragments]
            new_index = state.decided[held.key] = state.passed
            state.passed += 1
            return [
                self._emit(env, index, {"tool_calls": [{**frag, "index": new_index}]})
                for env, frag in held.fragments
            ]
        state.decided[held.key] = None
        state.blocked += 1
        self._on_block(held.name)
        text = ("\n\n" if state.text_sent else "") + refusal(held.name)
        state.text_sent = True
        return [self._emit(held.fragments[0][0], index, {"content": text})]

    @staticmethod
    def _emit(envelope: Json, index: int, delta: Json) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}
        return orjson.dumps({**envelope, "choices": [choice]})
