"""The response store on its own: the in-process LRU (entries, bytes, TTL on a ManualClock) and
the Redis one against a real redis-server (tests/fleet/redis_server.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from astra_sidecar.compiler.table import ResponsesStore
from astra_sidecar.compiler.table.fleet import RedisState
from astra_sidecar.sidecar.clock import ManualClock
from astra_sidecar.sidecar.protocols.responses.store import MemoryStore, RedisStore, StoreUnavailableError
from tests.fleet.redis_server import RedisServer
from tests.processes import free_port


def _entry(text: str) -> dict[str, object]:
    return {"response": {"id": text}, "conversation": [{"type": "message", "role": "user", "content": text}]}


async def test_an_entry_lives_for_its_ttl_on_the_sidecar_clock() -> None:
    clock = ManualClock()
    store = MemoryStore(ResponsesStore(ttl_ms=10_000), clock)
    await store.put("resp_1", _entry("one"))
    clock.advance(9.999)
    assert await store.get("resp_1") == _entry("one")
    clock.advance(0.001)
    assert await store.get("resp_1") is None
    assert store.size == (0, 0)


async def test_the_least_recently_used_entry_goes_first() -> None:
    store = MemoryStore(ResponsesStore(max_entries=2), ManualClock())
    await store.put("a", _entry("a"))
    await store.put("b", _entry("b"))
    assert await store.get("a") is not None  # now b is the least recently used
    await store.put("c", _entry("c"))
    assert await store.get("b") is None
    assert await store.get("a") is not None
    assert await store.get("c") is not None
    assert store.size[0] == 2


async def test_the_byte_bound_evicts_and_an_oversized_entry_is_not_kept() -> None:
    one = len(b'{"response":{"id":"x"},"conversation":[{"type":"message","role":"user","content":"x"}]}')
    store = MemoryStore(ResponsesStore(max_bytes=2 * one), ManualClock())
    for name in "xyz":
        await store.put(name, _entry(name))
    assert [await store.get(n) is not None for n in "xyz"] == [False, True, True]
    assert store.size == (2, 2 * one)
    await store.put("big", _entry("x" * 3 * one))
    assert await store.get("big") is None
    assert store.size == (2, 2 * one)


async def test_delete_says_whether_there_was_something_to_delete() -> None:
    store = MemoryStore(ResponsesStore(), ManualClock())
    await store.put("a", _entry("a"))
    assert await store.delete("a") is True
    assert await store.delete("a") is False
    assert store.size == (0, 0)


async def test_redis_keeps_each_response_under_the_prefix_with_its_ttl(redis_server: RedisServer) -> None:
    import redis

    store = RedisStore(
        redis_server.url,
        RedisState(url=redis_server.url, url_env=None, key_prefix="t1"),
        ResponsesStore(ttl_ms=60_000),
    )
    try:
        await store.put("resp_1", _entry("one"))
        assert await store.get("resp_1") == _entry("one")
        ttl = redis.Redis(port=redis_server.port).pttl("t1:responses:resp_1")
        assert 0 < ttl <= 60_000
        assert await store.delete("resp_1") is True
        assert await store.get("resp_1") is None
    finally:
        await store.close()


async def test_redis_down_is_unavailable_for_reads_and_a_lost_write_for_writes() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    store = RedisStore(url, RedisState(url=url, url_env=None), ResponsesStore())
    try:
        await store.put("resp_1", _entry("one"))  # logged, not raised: the answer is already out
        with pytest.raises(StoreUnavailableError):
            await store.get("resp_1")
    finally:
        await store.close()


def test_the_store_settings_compile_into_the_table(tmp_path: Path) -> None:
    from tests.sidecar.harness import compile_yaml

    agents = "agents: [{id: a, model: {provider: openai, modelId: gpt-4o}}]"
    table = compile_yaml(
        tmp_path,
        f"version: 1\nsettings: {{responses: {{store: {{maxEntries: 5, ttlMs: 2000}}}}}}\n{agents}\n",
    )
    assert table.settings.responses_store == ResponsesStore(
        max_entries=5, max_bytes=64 * 1024 * 1024, ttl_ms=2000
    )
    plain = compile_yaml(tmp_path, f"version: 1\n{agents}\n", name="plain.yml")
    assert plain.settings.responses_store == ResponsesStore()


def test_a_negative_bound_is_a_diagnostic_at_its_line_and_column(tmp_path: Path) -> None:
    from astra_sidecar.compiler.loader import CompileError
    from tests.sidecar.harness import compile_yaml

    text = "version: 1\nsettings:\n  responses:\n    store: {maxEntries: -1}\nagents: [{id: a, model: {provider: openai, modelId: gpt-4o}}]\n"
    with pytest.raises(CompileError) as caught:
        compile_yaml(tmp_path, text)
    assert str(caught.value).endswith(
        "astra.yml:4:25: error AST105 settings.responses.store.maxEntries: -1 is out of range: must be at least 0"
    )


async def test_a_redis_store_without_its_url_is_unavailable_not_an_internal_error(tmp_path: Path) -> None:
    from astra_sidecar.sidecar.protocols.responses.store import build_store
    from tests.sidecar.harness import compile_yaml

    text = "version: 1\nsettings: {state: {redis: {urlEnv: REDIS_URL}}}\nagents: [{id: a, model: {provider: openai, modelId: gpt-4o}}]\n"
    store = build_store(compile_yaml(tmp_path, text), {}, ManualClock())
    assert store is not None
    await store.put("resp_1", _entry("one"))
    with pytest.raises(StoreUnavailableError):
        await store.get("resp_1")


async def test_a_write_lost_to_redis_is_counted() -> None:
    from astra_sidecar.sidecar.metric_families import CounterChild

    url = f"redis://127.0.0.1:{free_port()}/0"
    lost = CounterChild()
    store = RedisStore(url, RedisState(url=url, url_env=None), ResponsesStore(), lost)
    try:
        await store.put("resp_1", _entry("one"))
        await store.put("resp_2", _entry("two"))
    finally:
        await store.close()
    assert lost.value == 2


async def test_a_write_the_sidecar_could_not_keep_is_in_its_metrics(tmp_path: Path) -> None:
    """No Redis URL: the answer goes out, the write is lost, and
    `astra_background_failures_total{task="response_store"}` says so."""
    from tests.fakes.openai_upstream import FakeOpenAI, Step, completion
    from tests.sidecar.harness import compile_yaml, running_sidecar

    upstream = await FakeOpenAI(Step(body=completion("Paris.", "gpt-up"))).start()
    text = f"""
        version: 1
        settings: {{state: {{redis: {{urlEnv: REDIS_URL}}}}}}
        agents: [{{id: a, model: {{provider: vllm, modelId: gpt-up, endpoint: "{upstream.url}/v1"}}}}]
        """
    try:
        async with running_sidecar(compile_yaml(tmp_path, text), env={"VLLM_API_KEY": "k"}) as sidecar:
            answer = await sidecar.client().responses.create(model="a", input="Capital of France?")
            assert answer.output_text == "Paris."
            labels = {"task": "response_store"}
            assert sidecar.metric("astra_background_failures_total", labels) == 1
    finally:
        await upstream.close()
