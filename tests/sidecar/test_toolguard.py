"""The tool guard on answers, without a network: plain OpenAI answers and chunk streams."""

from __future__ import annotations

from typing import Any

import orjson

from astra_sidecar.compiler.table import ToolPolicy
from astra_sidecar.sidecar.policy.tools import StreamGuard, ToolGuard, printable, refusal

DENY_REFUND = ToolPolicy(deny=("refund",))
REFUND_REFUSAL = 'Tool call "refund" was blocked by this gateway\'s policy.'
BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def call(id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


def answer(content: str | None, calls: list[dict[str, Any]], finish: str = "tool_calls") -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    return orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion", "choices": [choice]})


def guard(policy: ToolPolicy = DENY_REFUND) -> tuple[ToolGuard, list[str]]:
    blocked: list[str] = []
    return ToolGuard("agent", policy), blocked


# --- plain answers ---------------------------------------------------------------------------------


def test_refusal_text_names_the_tool() -> None:
    assert refusal("refund") == REFUND_REFUSAL


def test_a_blocked_call_leaves_the_answer_and_the_text_says_so() -> None:
    tool_guard, blocked = guard()
    raw = answer("Let me check.", [call("c1", "lookup", "{}"), call("c2", "refund", '{"amount":9}')])
    out = orjson.loads(tool_guard.completion(raw, blocked.append))
    assert out["choices"][0] == {
        "index": 0,
        "message": {
            "role": "assistant",
            "content": "Let me check.\n\n" + REFUND_REFUSAL,
            "refusal": None,
            "tool_calls": [call("c1", "lookup", "{}")],
        },
        "logprobs": None,
        "finish_reason": "tool_calls",
    }
    assert blocked == ["refund"]


def test_when_every_call_is_blocked_the_answer_stops_with_the_refusals() -> None:
    tool_guard, blocked = guard(ToolPolicy(allow=("search",)))
    raw = answer(None, [call("c1", "refund", "{}"), call("c2", "delete_account", "{}")])
    choice = orjson.loads(tool_guard.completion(raw, blocked.append))["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": REFUND_REFUSAL + "\n" + refusal("delete_account"),
        "refusal": None,
    }
    assert choice["finish_reason"] == "stop"
    assert blocked == ["refund", "delete_account"]


def test_answers_without_blocked_calls_are_the_same_bytes() -> None:
    tool_guard, blocked = guard()
    plain = answer("Hello", [], finish="stop")
    allowed = answer(None, [call("c1", "lookup", "{}")])
    assert tool_guard.completion(plain, blocked.append) is plain
    assert tool_guard.completion(allowed, blocked.append) is allowed
    assert blocked == []


def test_a_legacy_function_call_is_blocked_too() -> None:
    tool_guard, blocked = guard()
    message = {"role": "assistant", "content": None, "function_call": {"name": "refund", "arguments": "{}"}}
    raw = orjson.dumps({"choices": [{"index": 0, "message": message, "finish_reason": "function_call"}]})
    choice = orjson.loads(tool_guard.completion(raw, blocked.append))["choices"][0]
    assert choice == {
        "index": 0,
        "message": {"role": "assistant", "content": REFUND_REFUSAL},
        "finish_reason": "stop",
    }
    assert blocked == ["refund"]


# --- streams ---------------------------------------------------------------------------------------


def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> bytes:
    choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
    return orjson.dumps({**BASE, "choices": [choice]})


def fragment(index: int, arguments: str, id: str | None = None, name: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if id is not None:
        out.update(id=id, type="function")
        out["function"]["name"] = name
    return {"tool_calls": [out]}


def text(content: str, index: int = 0) -> bytes:
    return chunk({"content": content}, index=index)


def decoded(payloads: list[bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(p)["choices"][0]["delta"] for p in payloads]


def test_text_flows_at_once_and_each_call_waits_until_it_is_complete() -> None:
    blocked: list[str] = []
    stream = StreamGuard(DENY_REFUND, blocked.append)
    role = chunk({"role": "assistant", "content": ""})
    lookup = [chunk(fragment(0, "", "c1", "lookup")), chunk(fragment(0, '{"id"')), chunk(fragment(0, ":1}"))]
    refund = [chunk(fragment(1, "", "c2", "refund")), chunk(fragment(1, '{"amount":9}'))]
    notify = [chunk(fragment(2, "", "c3", "notify")), chunk(fragment(2, "{}"))]
    finish = chunk({}, "tool_calls")
    usage = orjson.dumps({**BASE, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}})

    assert stream.feed([role, text("Let me check.")]) == [role, text("Let me check.")]
    assert [stream.feed([p]) for p in lookup] == [[], [], []]
    # refund starts: lookup is complete and allowed, its fragments go out unchanged.
    assert stream.feed([refund[0]]) == lookup
    assert stream.feed([refund[1]]) == []
    assert stream.feed([text(" Still there?")]) == [text(" Still there?")]
    # notify starts: refund is complete and refused, the refusal replaces it.
    assert decoded(stream.feed([notify[0]])) == [{"content": "\n\n" + REFUND_REFUSAL}]
    assert stream.feed([notify[1]]) == []
    # the finish: notify goes out renumbered (index 1: passed calls stay 0..n-1), then the finish.
    out = stream.feed([finish, usage])
    assert decoded(out[:2]) == [
        {
            "tool_calls": [
                {"index": 1, "id": "c3", "type": "function", "function": {"name": "notify", "arguments": ""}}
            ]
        },
        {"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]},
    ]
    assert out[2:] == [finish, usage]
    assert orjson.loads(out[0]) == {
        **BASE,
        "choices": [{"index": 0, "delta": decoded(out[:1])[0], "logprobs": None, "finish_reason": None}],
    }
    assert stream.finish() == []
    assert blocked == ["refund"]


def test_when_every_call_is_blocked_the_stream_finishes_with_stop() -> None:
    blocked: list[str] = []
    stream = StreamGuard(ToolPolicy(allow=()), blocked.append)
    first = chunk(
        {"role": "assistant", "content": None, "tool_calls": fragment(0, "", "c1", "refund")["tool_calls"]}
    )
    out = stream.feed([first, chunk(fragment(0, "{}")), chunk({}, "tool_calls")])
    assert [orjson.loads(p)["choices"][0] for p in out] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": None},
            "logprobs": None,
            "finish_reason": None,
        },
        {"index": 0, "delta": {"content": REFUND_REFUSAL}, "logprobs": None, "finish_reason": None},
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"},
    ]
    assert blocked == ["refund"]


def test_calls_still_held_when_the_stream_ends_are_decided_then() -> None:
    blocked: list[str] = []
    stream = StreamGuard(DENY_REFUND, blocked.append)
    assert stream.feed(
        [chunk(fragment(0, "{}", "c1", "lookup")), chunk(fragment(1, "{}", "c2", "refund"))]
    ) == [chunk(fragment(0, "{}", "c1", "lookup"))]
    assert decoded(stream.finish()) == [{"content": REFUND_REFUSAL}]
    assert blocked == ["refund"]


def test_a_late_fragment_follows_its_calls_decision() -> None:
    blocked: list[str] = []
    stream = StreamGuard(DENY_REFUND, blocked.append)
    stream.feed([chunk(fragment(0, "", "c1", "refund")), chunk(fragment(1, "", "c2", "lookup"))])
    stream.feed([chunk(fragment(2, "", "c3", "notify"))])
    assert stream.feed([chunk(fragment(0, "late for refund"))]) == []
    assert decoded(stream.feed([chunk(fragment(1, "late for lookup"))])) == [
        {"tool_calls": [{"index": 0, "function": {"arguments": "late for lookup"}}]}
    ]


def test_choices_are_guarded_independently() -> None:
    blocked: list[str] = []
    stream = StreamGuard(DENY_REFUND, blocked.append)
    stream.feed(
        [chunk(fragment(0, "{}", "a", "refund"), index=0), chunk(fragment(0, "{}", "b", "lookup"), index=1)]
    )
    out = stream.feed([chunk({}, "tool_calls", index=0), chunk({}, "tool_calls", index=1)])
    choices = [orjson.loads(p)["choices"][0] for p in out]
    assert [(c["index"], c["delta"], c["finish_reason"]) for c in choices] == [
        (0, {"content": REFUND_REFUSAL}, None),
        (0, {}, "stop"),
        (1, fragment(0, "{}", "b", "lookup"), None),
        (1, {}, "tool_calls"),
    ]


def test_a_legacy_function_call_is_held_and_blocked_in_streams() -> None:
    blocked: list[str] = []
    stream = StreamGuard(DENY_REFUND, blocked.append)
    assert stream.feed([chunk({"function_call": {"name": "refund", "arguments": ""}})]) == []
    assert stream.feed([chunk({"function_call": {"arguments": "{}"}})]) == []
    out = stream.feed([chunk({}, "function_call")])
    assert [orjson.loads(p)["choices"][0]["delta"] for p in out] == [{"content": REFUND_REFUSAL}, {}]
    assert orjson.loads(out[1])["choices"][0]["finish_reason"] == "stop"


def test_chunks_without_choices_pass_as_they_are() -> None:
    stream = StreamGuard(DENY_REFUND, lambda name: None)
    usage = orjson.dumps({**BASE, "choices": [], "usage": {"prompt_tokens": 1}})
    assert stream.feed([usage, b"[1, 2]"]) == [usage, b"[1, 2]"]


# --- labels and log text ---------------------------------------------------------------------------


def test_names_are_made_printable_for_logs_and_labels() -> None:
    assert printable("refund") == "refund"
    assert printable("bad\nname\x00") == "bad?name?"
    assert printable("x" * 100) == "x" * 64
    assert printable("") == "?"


def test_metric_labels_are_bounded() -> None:
    """Names a model invents could be anything: 64 distinct labels per agent, then `other`."""
    tool_guard = ToolGuard("agent", ToolPolicy(deny=("refund",)))
    assert [tool_guard.label(f"tool{i}") for i in range(64)] == [f"tool{i}" for i in range(64)]
    assert tool_guard.label("one-too-many") == "other"
    assert tool_guard.label("tool3") == "tool3"
    assert tool_guard.label("refund") == "refund"
