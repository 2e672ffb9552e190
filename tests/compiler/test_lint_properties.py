"""Property: whatever the input, compiling never raises, and every outcome is well formed."""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from astra_sidecar.compiler.diagnostics import CODES, has_errors
from astra_sidecar.compiler.loader import compile_source
from astra_sidecar.compiler.providers import known_provider_names
from astra_sidecar.compiler.schemas import TABLE_SCHEMA, validator
from astra_sidecar.compiler.table import table_from_json

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

YAML_CHARS = [*"ab:-  \n\n\t{}[],&*!|>'\"#%@`?~.0123xyzé", "\x00", "\x07", "<<", "{{", "}}", "{%", "%}"]
scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=12)
json_ish = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)

# Structure-aware values, so that many examples get past the schema into checks and the build.
providers = st.sampled_from([*known_provider_names(), *known_provider_names(), "opneai", ""])
small_ints = st.integers(-1, 300_000) | st.sampled_from([2.0, 1e3, True])
templates = st.lists(st.sampled_from(["{{ ", " }}", "{% if x %}", "{% endif %}", "agent.id", "vars.a", "date",
                                      "model.nope", "\n", "text ", "|", "}"]), max_size=12).map("".join)
target = st.fixed_dictionaries(
    {"provider": providers, "modelId": st.sampled_from(["m", "n"] * 4 + [""])},
    optional={
        "endpoint": st.sampled_from(["http://h:1", "https://h/v1/", "http://h:1/v1", "ftp://x"]),
        "region": st.sampled_from(["us-east-1", "eu-west-1", "Bad Region"]),
        "credentials": st.sampled_from(["env", "passthrough"] * 3 + ["nope"]),
        "capabilities": st.fixed_dictionaries({}, optional={"tools": st.booleans(), "streaming": st.booleans()}),
        "mock": st.fixed_dictionaries({}, optional={"status": st.integers(390, 610), "failRate": st.floats(0, 1.1),
                                                    "reply": st.text(max_size=5)}),
        "vertex": st.fixed_dictionaries({"project": st.just("p"), "location": st.sampled_from(["global", "eu-west4"])}),
    },
)
fallback_entry = target | st.fixed_dictionaries({"agent": st.sampled_from(["a", "b", "c", "zz"])})
model = target.flatmap(lambda t: st.fixed_dictionaries(
    {k: st.just(v) for k, v in t.items()},
    optional={
        "temperature": st.floats(0, 2.1),
        "maxContextTokens": small_ints,
        "maxOutputTokens": small_ints,
        "fallback": fallback_entry | st.lists(fallback_entry, max_size=3),
    },
))
agent = st.fixed_dictionaries(
    {"model": model},
    optional={
        "systemPrompt": templates,
        "promptVars": st.dictionaries(st.sampled_from(["a", "b", "c", "1x"]), st.text(max_size=3), max_size=2),
        "tools": st.fixed_dictionaries({}, optional={"allow": st.lists(st.sampled_from(["s", "t"]), max_size=2),
                                                     "deny": st.lists(st.sampled_from(["s", "t"]), max_size=2)}),
        "retry": st.fixed_dictionaries({}, optional={"maxRetries": st.integers(0, 4) | st.just(1.0),
                                                     "jitter": st.floats(0, 1) | st.just(0)}),
        "timeouts": st.fixed_dictionaries({}, optional={"attemptMs": st.integers(1, 70_000)}),
        "requestTimeoutMs": small_ints,
        "circuitBreaker": st.fixed_dictionaries({}, optional={"failureThreshold": st.integers(1, 9)}),
    },
)
agents = st.dictionaries(st.sampled_from(["a", "b", "c"] * 3 + ["bad id"]), agent, min_size=1, max_size=3) | st.lists(
    agent.flatmap(lambda a: st.sampled_from(["a", "b", "a"]).map(lambda i: {"id": i, **a})), min_size=1, max_size=3)
config = st.fixed_dictionaries(
    {"agents": agents},
    optional={
        "version": st.sampled_from([1, 1, 1, 2]),
        "providers": st.dictionaries(providers, st.fixed_dictionaries(
            {}, optional={"endpoint": st.just("http://p:9"), "apiKeyEnv": st.just("K"), "region": st.just("eu-west-1"),
                          "credentials": st.sampled_from(["env", "passthrough"])}), max_size=3),
        "settings": st.fixed_dictionaries({}, optional={"requestTimeoutMs": small_ints,
                                                        "inboundAuth": st.fixed_dictionaries({"tokenEnv": st.just("T")})}),
    },
)


def _check(raw: bytes, env: dict[str, str] | None = None) -> None:
    result = compile_source(raw, "f.yml", env=env)
    assert all(d.code in CODES and d.line >= 1 and d.col >= 1 for d in result.diagnostics)
    assert list(result.diagnostics) == sorted(result.diagnostics)
    assert (result.table is None) == has_errors(result.diagnostics)
    if result.table is not None:
        assert list(validator(TABLE_SCHEMA).iter_errors(result.table)) == []
        table = table_from_json(result.table)
        assert all(key in table.clusters for agent in table.agents.values() for key in agent.plan)


@FAST
@given(st.lists(st.sampled_from(YAML_CHARS), max_size=80).map("".join))
def test_arbitrary_yaml_like_text(text: str) -> None:
    _check(text.encode())


@FAST
@given(st.binary(max_size=64))
def test_arbitrary_bytes(raw: bytes) -> None:
    _check(raw)


@FAST
@given(json_ish)
def test_arbitrary_json_documents(value: Any) -> None:
    _check(json.dumps(value).encode())
    _check(yaml.safe_dump(value).encode())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config, st.booleans())
def test_config_shaped_documents(document: dict[str, Any], check_env: bool) -> None:
    _check(yaml.safe_dump(document, sort_keys=False).encode(), env={} if check_env else None)
