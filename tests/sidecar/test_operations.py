"""Health, readiness, metrics, hot reload, draining and access logs."""

from __future__ import annotations

import asyncio
import json
import logging
import textwrap
from pathlib import Path

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletion

from astra_sidecar.compiler.loader import load_routing_table
from astra_sidecar.compiler.table import RoutingTable
from astra_sidecar.sidecar.reload import Reloader
from tests.fakes.openai_upstream import FakeOpenAI, Step, completion
from tests.processes import eventually
from tests.sidecar.harness import compile_yaml, running_sidecar

ONE = """
    version: 1
    agents:
      demo: {model: {provider: mock, modelId: one, mock: {reply: "first table"}}}
    """
TWO = """
    version: 1
    agents:
      demo: {model: {provider: mock, modelId: two, mock: {reply: "second table"}}}
      extra: {model: {provider: mock, modelId: extra}}
    """


async def _get(url: str) -> tuple[int, dict[str, object] | str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


async def test_health_ready_and_metrics(tmp_path: Path) -> None:
    table = compile_yaml(tmp_path, ONE)
    async with running_sidecar(table) as sidecar:
        await sidecar.client().chat.completions.create(
            model="demo", messages=[{"role": "user", "content": "hi"}]
        )
        health = await _get(sidecar.url + "/healthz")
        ready = await _get(sidecar.url + "/readyz")
        status, text = await _get(sidecar.url + "/metrics")
    assert health == (200, {"status": "ok"})
    assert ready[0] == 200 and ready[1]["tableHash"] == table.hash  # type: ignore[index]
    assert status == 200
    assert f'astra_table_info{{hash="{table.hash}",schema_version="1"}} 1.0' in str(text)
    assert 'astra_requests_total{agent="demo",provider="mock",status="200"} 1.0' in str(text)
    assert 'astra_tokens_total{agent="demo",kind="completion",provider="mock"} 2.0' in str(text)


async def test_reload_swaps_the_table_and_keeps_it_on_an_invalid_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "astra.yml"
    path.write_text(textwrap.dedent(ONE))
    first = load_routing_table(path)
    async with running_sidecar(first) as sidecar:
        reloader = Reloader(sidecar.state, str(path), load_routing_table)
        client = sidecar.client()

        async def ask() -> ChatCompletion:
            return await client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "x"}])

        assert (await ask()).choices[0].message.content == "first table"

        path.write_text(textwrap.dedent(TWO))
        assert await reloader.reload("test") is True
        assert (await ask()).choices[0].message.content == "second table"
        assert sorted(m.id for m in (await client.models.list()).data) == ["demo", "extra"]
        table = sidecar.state.runtime.table

        path.write_text("version: 1\nagents: {demo: {model: {provider: nope, modelId: x}}}\n")
        caplog.set_level(logging.ERROR, logger="astra.sidecar")
        assert await reloader.reload("test") is False
        assert (await ask()).choices[0].message.content == "second table"
        failed = sidecar.metric("astra_reloads_total", {"result": "failed"})
        ok = sidecar.metric("astra_reloads_total", {"result": "ok"})
    assert (ok, failed) == (1.0, 1.0)
    (refused,) = [r.getMessage() for r in caplog.records if r.name == "astra.sidecar" and r.levelno == logging.ERROR]
    assert refused.startswith(f"reload (test) failed in the load step, still serving table {table.hash}: ")
    assert f"{path}:2:" in refused and "AST202" in refused and "\n" not in refused


async def test_a_loader_failing_with_an_os_error_is_a_failed_reload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def unreadable(path: str) -> RoutingTable:
        raise PermissionError(13, "Permission denied", path)

    table = compile_yaml(tmp_path, ONE)
    caplog.set_level(logging.ERROR, logger="astra.sidecar")
    async with running_sidecar(table) as sidecar:
        assert await Reloader(sidecar.state, str(tmp_path / "t.json"), unreadable).reload("SIGHUP") is False
        assert sidecar.state.runtime.table.hash == table.hash
        failed = sidecar.metric("astra_reloads_total", {"result": "failed"})
    assert failed == 1.0
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        f"reload (SIGHUP) failed in the load step, still serving table {table.hash}: "
        f"PermissionError: [Errno 13] Permission denied: '{tmp_path / 't.json'}'"
    ]


GEMINI_ADDED = """
    version: 1
    agents:
      demo: {model: {provider: mock, modelId: one, mock: {reply: "first table"}}}
      gem: {model: {provider: gemini, modelId: gemini-2.5-flash}}
    """
VERTEX_ADDED = """
    version: 1
    agents:
      demo: {model: {provider: mock, modelId: one, mock: {reply: "first table"}}}
      gem: {model: {provider: gemini, modelId: gemini-2.5-flash, vertex: {project: p, location: global}}}
    """


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "astra.sidecar" and r.levelno >= logging.ERROR]


async def test_a_loader_raising_anything_is_a_failed_reload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(path: str) -> RoutingTable:
        raise RuntimeError("the loader broke")

    table = compile_yaml(tmp_path, ONE)
    caplog.set_level(logging.ERROR, logger="astra.sidecar")
    async with running_sidecar(table) as sidecar:
        assert await Reloader(sidecar.state, str(tmp_path / "t.json"), broken).reload("SIGHUP") is False
        assert sidecar.state.runtime.table.hash == table.hash
        failed = sidecar.metric("astra_reloads_total", {"result": "failed"})
    assert failed == 1.0
    assert _errors(caplog) == [
        f"reload (SIGHUP) failed in the load step, still serving table {table.hash}: "
        "RuntimeError: the loader broke"
    ]


async def test_a_failure_building_the_runtime_is_a_failed_reload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The swap step: the new table loads, but its runtime cannot be built in this environment
    (an invalid Vertex AI switch only matters once a Gemini cluster appears)."""
    path = tmp_path / "astra.yml"
    path.write_text(textwrap.dedent(ONE))
    table = load_routing_table(path)
    caplog.set_level(logging.ERROR, logger="astra.sidecar")
    async with running_sidecar(table, env={"ASTRA_GEMINI_VERTEX_AI_ENABLED": "maybe"}) as sidecar:
        path.write_text(textwrap.dedent(GEMINI_ADDED))
        assert await Reloader(sidecar.state, str(path), load_routing_table).reload("file changed") is False
        assert sidecar.state.runtime.table.hash == table.hash
        assert sorted(sidecar.state.runtime.agents) == ["demo"]
        failed = sidecar.metric("astra_reloads_total", {"result": "failed"})
    assert failed == 1.0
    assert _errors(caplog) == [
        f"reload (file changed) failed in the swap step, still serving table {table.hash}: "
        "VertexConfigError: ASTRA_GEMINI_VERTEX_AI_ENABLED must be one of 1/true/yes/on or 0/false/no/off"
    ]


async def test_a_vertex_cluster_without_the_extra_is_a_failed_reload_naming_the_extra(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from astra_sidecar.sidecar.auth import google

    monkeypatch.setattr(google, "google_auth_installed", lambda: False)
    path = tmp_path / "astra.yml"
    path.write_text(textwrap.dedent(ONE))
    caplog.set_level(logging.ERROR, logger="astra.sidecar")
    async with running_sidecar(load_routing_table(path)) as sidecar:
        path.write_text(textwrap.dedent(VERTEX_ADDED))
        assert await Reloader(sidecar.state, str(path), load_routing_table).reload("file changed") is False
    (line,) = _errors(caplog)
    assert "failed in the swap step" in line
    assert line.endswith(
        "VertexExtraMissing: cluster gemini:gemini-2.5-flash:https://aiplatform.googleapis.com: "
        "Vertex AI needs google-auth: pip install 'astra-sidecar[vertex]'"
    )


async def test_an_unchanged_file_says_so_and_changes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "astra.yml"
    path.write_text(textwrap.dedent(ONE))
    table = load_routing_table(path)
    caplog.set_level(logging.INFO, logger="astra.sidecar")
    async with running_sidecar(table) as sidecar:
        assert await Reloader(sidecar.state, str(path), load_routing_table).reload("SIGHUP") is True
        counted = [sidecar.metric("astra_reloads_total", {"result": r}) for r in ("ok", "failed", "unchanged")]
        assert sidecar.state.runtime.table is table
    assert counted == [0.0, 0.0, 1.0]
    assert [r.getMessage() for r in caplog.records if r.name == "astra.sidecar"] == [
        f"reload (SIGHUP): the table is unchanged ({table.hash}), nothing to do"
    ]


async def test_the_watcher_keeps_watching_after_failed_loads_and_swaps(tmp_path: Path) -> None:
    path = tmp_path / "astra.yml"
    path.write_text(textwrap.dedent(ONE))
    async with running_sidecar(
        load_routing_table(path), env={"ASTRA_GEMINI_VERTEX_AI_ENABLED": "maybe"}
    ) as sidecar:
        watcher = asyncio.create_task(
            Reloader(sidecar.state, str(path), load_routing_table).watch(interval_s=0.01)
        )
        try:
            failed = lambda: sidecar.metric("astra_reloads_total", {"result": "failed"})  # noqa: E731
            path.write_text("version: 1\nagents: {demo: {model: {provider: nope, modelId: x}}}\n")
            assert await eventually(lambda: failed() == 1.0)
            path.write_text(textwrap.dedent(GEMINI_ADDED))
            assert await eventually(lambda: failed() == 2.0)
            path.write_text(textwrap.dedent(TWO))
            assert await eventually(lambda: sidecar.metric("astra_reloads_total", {"result": "ok"}) == 1.0)
            assert sorted(sidecar.state.runtime.agents) == ["demo", "extra"]
            assert not watcher.done()
        finally:
            watcher.cancel()


async def test_in_flight_request_finishes_on_the_old_table_during_reload(tmp_path: Path) -> None:
    upstream = await FakeOpenAI(Step(body=completion("old route"))).start()
    path = tmp_path / "astra.yml"
    path.write_text(
        textwrap.dedent(f"""
        version: 1
        agents:
          chat: {{model: {{provider: openai, modelId: m, endpoint: {upstream.url}}}}}
        """)
    )
    try:
        table = load_routing_table(path)
        async with running_sidecar(table, env={"OPENAI_API_KEY": "k"}) as sidecar:
            upstream.script = [Step("hang")]
            reloader = Reloader(sidecar.state, str(path), load_routing_table)
            pending = asyncio.ensure_future(
                sidecar.client().chat.completions.create(
                    model="chat", messages=[{"role": "user", "content": "x"}]
                )
            )
            assert await eventually(lambda: bool(upstream.received))
            path.write_text(textwrap.dedent(ONE).replace("demo", "chat"))
            assert await reloader.reload("test")
            # Released, the hung attempt answers 500; its retry still goes to the OLD cluster.
            upstream.script = [Step("hang"), Step(body=completion("old route"))]
            upstream.release.set()
            answer = await pending
            assert answer.choices[0].message.content == "old route"
            assert len(upstream.received) == 2
            assert sidecar.state.runtime.agents["chat"].plan[0].cluster.provider == "mock"
    finally:
        await upstream.close()


async def test_draining_refuses_new_requests_and_waits_for_in_flight(tmp_path: Path) -> None:
    table = compile_yaml(tmp_path, ONE)
    async with running_sidecar(table) as sidecar:
        state = sidecar.state
        state.enter()  # one request in flight
        drain = asyncio.ensure_future(state.drain(5.0))
        assert await eventually(lambda: state.draining)
        ready = await _get(sidecar.url + "/readyz")
        with pytest.raises(openai.InternalServerError) as caught:
            await sidecar.client().chat.completions.create(
                model="demo", messages=[{"role": "user", "content": "x"}]
            )
        assert not drain.done()
        state.leave()
        assert await drain is True
    assert ready[0] == 503 and ready[1]["status"] == "draining"  # type: ignore[index]
    assert caught.value.status_code == 503 and caught.value.body["code"] == "draining"  # type: ignore[index]


async def test_access_log_is_json_and_never_holds_keys_or_contents(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    canary = "sk-CANARY-1234567890"
    upstream = await FakeOpenAI(Step(body=completion("secret answer text"))).start()
    try:
        table = compile_yaml(
            tmp_path,
            f"""
            version: 1
            agents:
              chat: {{model: {{provider: openai, modelId: m, endpoint: {upstream.url}}}}}
            """,
        )
        caplog.set_level(logging.INFO, logger="astra")
        async with running_sidecar(table, env={"OPENAI_API_KEY": canary}) as sidecar:
            await sidecar.client(api_key=canary).chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "private question"}]
            )
            _, metrics_text = await _get(sidecar.url + "/metrics")
    finally:
        await upstream.close()
    access = [json.loads(r.getMessage()) for r in caplog.records if r.name == "astra.access"]
    assert len(access) == 1
    line = access[0]
    assert (line["agent"], line["provider"], line["status"], line["attempts"]) == ("chat", "openai", 200, 1)
    assert line["prompt_tokens"] == 5 and line["completion_tokens"] == 2
    everything = caplog.text + str(metrics_text)
    for secret in (canary, "private question", "secret answer text"):
        assert secret not in everything
