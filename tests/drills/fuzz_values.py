"""The values hostile bodies are built from: any JSON value, odd texts, agent ids, tool names and
numbers, and `sometimes_wrong` (see `tests.drills.fuzz_strategies`)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.drills.fuzz_rig import AGENTS

Strategy = st.SearchStrategy[Any]

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=16)
)
#: Any JSON value, small.
json_values: Strategy = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def sometimes_wrong(good: Strategy) -> Strategy:
    """Mostly `good`, else any JSON value (two to one)."""
    return st.one_of(good, good, json_values)


texts = st.text(max_size=40) | st.sampled_from(["", " ", "\x00", "\u202e", "{{ 7*7 }}", "😀" * 3, "a" * 300])
agent_ids = st.sampled_from([*AGENTS, *AGENTS, "nope", "", "../mock", "mock\x00", "MOCK", "a" * 200])
tool_names = st.sampled_from(["get_weather", "search", "delete_account", "other", "", "get-weather"])
numbers = (
    st.integers(-5, 5) | st.floats(-3, 3, allow_nan=False) | st.sampled_from([1e308, -1e308, 2**63, 0.5])
)
counts = st.integers(-3, 70_000) | st.sampled_from([2**53, 2**64, 1.5, True])
