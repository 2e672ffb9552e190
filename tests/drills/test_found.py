"""What the drills and fuzzers found, pinned down one by one (each was a bug before its fix)."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from astra_sidecar.compiler.diagnostics import Diagnostic
from astra_sidecar.sidecar.app import create_app
from astra_sidecar.sidecar.app_keys import STATE
from astra_sidecar.sidecar.clock import ManualClock, MonotonicClock
from tests.fakes.openai_upstream import FakeOpenAI, Step, text_chunks
from tests.processes import eventually
from tests.sidecar.harness import compile_yaml, running_sidecar

ENV = {"OPENAI_API_KEY": "sk-test"}
USER = [{"role": "user", "content": "hi"}]


def _yaml(url: str, extra: str = "") -> str:
    return f"""
        version: 1
        agents:
          chat:
            model: {{provider: openai, modelId: gpt-x, endpoint: '{url}'}}
            {extra}
        """


async def test_an_attempt_cut_by_the_deadline_is_counted_as_an_attempt(tmp_path: Path) -> None:
    """The drill: x-astra-attempts (and the upstream) counted one more attempt than
    astra_upstream_attempts_total, which skipped attempts ended by the request deadline."""
    upstream = await FakeOpenAI(Step("hang")).start()
    try:
        table = compile_yaml(tmp_path, _yaml(upstream.url, "requestTimeoutMs: 100"))
        async with running_sidecar(table, env=ENV, clock=ManualClock()) as sidecar:
            async with aiohttp.ClientSession() as session:
                body = {"model": "chat", "messages": USER}
                async with session.post(sidecar.url + "/v1/chat/completions", json=body) as response:
                    status, attempts = response.status, response.headers["x-astra-attempts"]
                    error = (await response.json())["error"]
            counted = sidecar.metric(
                "astra_upstream_attempts_total", {"agent": "chat", "provider": "openai", "outcome": "network"}
            )
    finally:
        await upstream.close()
    assert (status, error["code"], attempts) == (504, "deadline_exceeded", "1")
    assert len(upstream.received) == 1
    assert counted == 1.0


async def test_a_client_gone_mid_stream_is_no_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The drill's abandoned requests: when a write to a client that went away fails before the
    handler is cancelled (always, without handler cancellation), the ConnectionResetError went up
    to the guard, which logged "unexpected error" with a traceback and tried to answer 500."""
    caplog.set_level(logging.INFO)
    chunks = text_chunks([f"w{i} " for i in range(40)])
    upstream = await FakeOpenAI(Step("sse", chunks=chunks, chunk_delay_s=0.01)).start()
    table = compile_yaml(tmp_path, _yaml(upstream.url))
    app = create_app(table, env=ENV, clock=MonotonicClock(), rng=random.Random(1))
    runner = web.AppRunner(app, handler_cancellation=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            body = {"model": "chat", "messages": USER, "stream": True}
            async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body) as response:
                assert response.status == 200
                await response.content.readline()
            # Leaving the block closes the connection with the stream unread.
        # The relay notices at its next write.
        assert await eventually(lambda: app[STATE].in_flight == 0), "the relay never noticed the disconnect"
        breaker = next(iter(app[STATE].shared.breakers.values()))
        assert app[STATE].in_flight == 0
        assert breaker.state == "closed"
    finally:
        await runner.cleanup()
        await upstream.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    (access,) = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "astra.access"]
    assert (access["status"], access["error_code"]) == (200, "client_disconnected")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"contents": [{"role": [], "parts": [{"text": "hi"}]}]}, "contents[0].role"),
        ({"contents": [{"role": {"a": 1}, "parts": [{"text": "hi"}]}]}, "contents[0].role"),
        (
            {
                "contents": [{"parts": [{"text": "hi"}]}],
                "toolConfig": {"functionCallingConfig": {"mode": ["ANY"]}},
            },
            "toolConfig.functionCallingConfig.mode",
        ),
    ],
)
async def test_gemini_fields_of_unhashable_types_are_a_400(
    tmp_path: Path, body: dict[str, object], param: str
) -> None:
    """The fuzzer: a list or an object where Gemini wants a role or a mode name was looked up in
    a frozenset (TypeError: unhashable type) and answered 500 internal_error."""
    table = compile_yaml(tmp_path, "version: 1\nagents:\n  m:\n    model: {provider: mock, modelId: x}\n")
    async with running_sidecar(table) as sidecar, aiohttp.ClientSession() as session:
        url = sidecar.url + "/v1/gemini/m/v1beta/models/x:generateContent"
        async with session.post(url, json=body) as response:
            status, error = response.status, (await response.json())["error"]
    assert (status, error["status"]) == (400, "INVALID_ARGUMENT")
    assert error["details"][-1]["fieldViolations"][0]["field"] == param


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/anthropic/m/v1/messages"])
async def test_a_body_that_is_not_what_its_content_encoding_says_is_a_400(tmp_path: Path, route: str) -> None:
    """The fuzzer: `Content-Encoding: gzip` on a plain body made reading it raise
    RequestPayloadError, which the guard answered with a 500 internal_error."""
    table = compile_yaml(tmp_path, "version: 1\nagents:\n  m:\n    model: {provider: mock, modelId: x}\n")
    body = orjson.dumps({"model": "m", "messages": USER})
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    async with running_sidecar(table) as sidecar, aiohttp.ClientSession() as session:
        response = await session.post(sidecar.url + route, data=body, headers=headers)
        status, data = response.status, await response.json()
    assert status == 400
    message = data["error"]["message"]
    assert message == "request body cannot be decoded as its Content-Encoding says"


def test_a_diagnostic_quoting_line_breaks_stays_on_one_line() -> None:
    """The fuzzer: a key such as "\\r" in astra.yml was quoted raw in the message, so the text
    (and editor) form of one diagnostic spanned two lines."""
    found = Diagnostic("astra.yml", 3, 5, "AST101", "unknown key '\r\n\t\x0b\x85\u2028' in settings")
    text = str(found)
    assert text.splitlines() == [text]
    assert text == r"astra.yml:3:5: error AST101 unknown key '\x0d\x0a\x09\x0b\x85\u2028' in settings"


TRANSLATED = """
    version: 1
    agents:
      claude:
        model: {provider: claude, modelId: claude-x, endpoint: 'http://127.0.0.1:9'}
      bedrock:
        model: {provider: bedrock, modelId: anthropic.claude-x-v1:0, endpoint: 'http://127.0.0.1:9', region: us-east-1}
    """
AWS = {
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.mark.parametrize("agent", ["claude", "bedrock"])
@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": [None]}],
        [{"role": "system", "content": [None]}, {"role": "user", "content": "hi"}],
        [{"role": "developer", "content": {"type": "text"}}, {"role": "user", "content": "hi"}],
        [{"role": "user", "content": {"type": "text", "text": "hi"}}],
        [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [None]}],
        [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [{"function": "f"}]}],
        [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": {"id": "x"}}],
    ],
)
async def test_openai_messages_of_the_wrong_shape_are_a_400_on_translated_providers(
    tmp_path: Path, agent: str, messages: list[object]
) -> None:
    """The fuzzer: OpenAI content parts or tool calls that are not objects reached the Anthropic
    and Bedrock translations, which called `.get` on them and answered 500 internal_error."""
    table = compile_yaml(tmp_path, TRANSLATED)
    env = {"ANTHROPIC_API_KEY": "sk-ant", **AWS}
    async with running_sidecar(table, env=env) as sidecar, aiohttp.ClientSession() as session:
        body = {"model": agent, "messages": messages}
        response = await session.post(sidecar.url + "/v1/chat/completions", json=body)
        status, error = response.status, (await response.json())["error"]
    assert (status, error["type"]) == (400, "invalid_request_error"), error
    assert error["param"] == "messages" or error["param"].startswith("messages["), error


@pytest.mark.parametrize("agent", ["claude", "bedrock"])
@pytest.mark.parametrize("tools", [[None], ["get_weather"], [{"type": "function", "function": None}]])
async def test_openai_tools_of_the_wrong_shape_are_a_400(
    tmp_path: Path, agent: str, tools: list[object]
) -> None:
    """The fuzzer: `tools: [null]` reached the Anthropic translation (`.get` on None, a 500);
    fixed meanwhile by the request checks of the tool-policy work, pinned here."""
    table = compile_yaml(tmp_path, TRANSLATED)
    env = {"ANTHROPIC_API_KEY": "sk-ant", **AWS}
    async with running_sidecar(table, env=env) as sidecar, aiohttp.ClientSession() as session:
        body = {"model": agent, "messages": USER, "tools": tools}
        response = await session.post(sidecar.url + "/v1/chat/completions", json=body)
        status, error = response.status, (await response.json())["error"]
    assert (status, error["type"]) == (400, "invalid_request_error"), error
    assert error["param"].startswith("tools[0]"), error
