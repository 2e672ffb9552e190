"""One running sidecar for fuzzing every ingress route, and the rules every answer must follow.

The rig runs its own event loop in a background thread (Hypothesis examples are synchronous
calls), with the sidecar on real sockets in front of: the built-in `mock` provider, two chaos
upstreams (`tests.fakes.chaos_upstream`, fast faults only), fake Anthropic and Gemini APIs (so
the native pass-through paths are fuzzed too) and a fake Bedrock (Converse translations). Examples run one at a time, so the
rig can tell whether an answer involved an upstream at all.

`check_answer` is the oracle: whatever was sent, the sidecar answers with a parseable body in
the shape of the API the route speaks (JSON error, JSON answer, or an SSE stream that parses),
never a traceback, and never a 5xx of its own making. A 5xx is accepted only when it comes from an
upstream this request reached (a mapped 502/503/504, or an upstream 500 passed on), or from a
circuit breaker that is open; a 500 `internal_error` / "internal error in the sidecar" never is,
and neither is any ERROR record in the sidecar's, aiohttp's or asyncio's logs.
"""

from __future__ import annotations

import asyncio
import logging
import random
import tempfile
import textwrap
import threading
from collections.abc import Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from astra_sidecar.compiler.loader import load_routing_table
from astra_sidecar.sidecar.app import create_app
from astra_sidecar.sidecar.app_keys import STATE
from astra_sidecar.sidecar.clock import MonotonicClock
from tests.fakes import bedrock_upstream
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.chaos_upstream import FAST_FAULTS, ChaosUpstream
from tests.fakes.gemini_upstream import FakeGemini

T = TypeVar("T")

ENV = {
    "OPENAI_API_KEY": "sk-fuzz-openai",
    "GROQ_API_KEY": "gsk-fuzz",
    "ANTHROPIC_API_KEY": "sk-ant-fuzz",
    "GEMINI_API_KEY": "g-fuzz",
    "AWS_ACCESS_KEY_ID": bedrock_upstream.TEST_ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": bedrock_upstream.TEST_SECRET_KEY,
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}
#: The agents (see `_yaml`): mock, chaos with a mock fallback, chaos alone, native claude and
#: gemini with fallbacks, bedrock, and one with tool policy, limits and a system prompt.
AGENTS = ("mock", "chaos", "chaos-alone", "claude", "gemini", "bedrock", "guarded")
MAX_BODY_BYTES = 256 * 1024
SIDECAR_500 = "internal error in the sidecar"


def _yaml(chaos: str, chaos_alone: str, anthropic: str, gemini: str, bedrock: str) -> str:
    return textwrap.dedent(
        f"""
        version: 1
        settings:
          requestTimeoutMs: 3000
          maxBodyBytes: {MAX_BODY_BYTES}
          retry: {{maxRetries: 1, baseDelayMs: 5, maxDelayMs: 20, jitter: 0.5, maxRetryAfterMs: 100}}
          circuitBreaker: {{failureThreshold: 5, windowMs: 1000, cooldownMs: 200, successThreshold: 1}}
          timeouts: {{attemptMs: 1000, streamIdleMs: 1000}}
        agents:
          mock:
            model: {{provider: mock, modelId: fuzz-mock}}
          chaos:
            model:
              provider: openai
              modelId: chaos-model
              endpoint: '{chaos}'
              fallback: {{provider: mock, modelId: fuzz-mock-fallback}}
          chaos-alone:
            model: {{provider: groq, modelId: chaos-alone-model, endpoint: '{chaos_alone}'}}
          claude:
            model:
              provider: claude
              modelId: claude-test
              endpoint: '{anthropic}'
              fallback: {{provider: openai, modelId: chaos-model, endpoint: '{chaos}'}}
            systemPrompt: "You are {{{{ agent.id }}}}."
          gemini:
            model:
              provider: gemini
              modelId: gemini-2.5-flash
              endpoint: '{gemini}'
              fallback: {{provider: mock, modelId: fuzz-mock-gemini-fallback}}
          bedrock:
            model:
              provider: bedrock
              modelId: anthropic.claude-fuzz-v1:0
              endpoint: '{bedrock}'
              region: us-east-1
              fallback: {{provider: openai, modelId: chaos-model, endpoint: '{chaos}'}}
            systemPrompt: "You are {{{{ agent.id }}}}."
          guarded:
            model:
              provider: mock
              modelId: fuzz-guarded
              maxContextTokens: 4000
              maxOutputTokens: 100
              temperature: 0.3
            tools: {{allow: [get_weather, search], deny: [delete_account]}}
            systemPrompt: "Agent {{{{ agent.id }}}} on {{{{ model.provider }}}}."
        """
    )


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes
    #: Whether any upstream (chaos or fake) received a request while this one was served.
    contacted: bool
    #: Whether any circuit breaker was open or half-open after it.
    breaker_open: bool
    #: ERROR log records emitted while it was served.
    errors: tuple[str, ...]


#: What aiohttp's HTTP layer logs at ERROR about the client's own bytes, outside any handler: a
#: request that breaks HTTP (`BadHttpMessage` and kin), or a body that cannot be decoded as its
#: Content-Encoding says, read again by aiohttp after the sidecar answered 400. Not the sidecar's.
CLIENT_INPUT_LOGS = frozenset(
    {"BadHttpMessage", "BadStatusLine", "InvalidHeader", "LineTooLong", "RequestPayloadError"}
    | {"ContentEncodingError", "ContentLengthError", "TransferEncodingError", "PayloadEncodingError"}
)


class _ErrorRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []
        self.client_input = 0
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        kind = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else None
        with self._lock:
            if record.name == "aiohttp.server" and kind in CLIENT_INPUT_LOGS:
                self.client_input += 1
                return
            error = f" ({kind}: {record.exc_info[1] if record.exc_info else ''})" if kind else ""
            self.records.append(f"{record.name}: {record.getMessage()}{error}")

    def take(self) -> tuple[str, ...]:
        with self._lock:
            out, self.records = tuple(self.records), []
        return out


class Rig:
    """The sidecar and its upstreams on a loop in a background thread."""

    def __init__(self, seed: int = 7) -> None:
        self._seed = seed
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fuzz-rig", daemon=True)
        self._errors = _ErrorRecords()
        self._tmp = tempfile.TemporaryDirectory()
        self._servers: list[TestServer] = []
        self.chaos: list[ChaosUpstream] = []
        self.anthropic = FakeAnthropic()
        self.gemini = FakeGemini()
        self.bedrock = bedrock_upstream.BedrockUpstream()
        self.base = ""
        self.app: web.Application | None = None
        self._session: aiohttp.ClientSession | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> Rig:
        self._thread.start()
        for name in ("astra", "aiohttp", "asyncio"):
            logging.getLogger(name).addHandler(self._errors)
        self.run(self._start())
        return self

    async def _start(self) -> None:
        self.chaos = [
            await ChaosUpstream(seed=self._seed, mix=FAST_FAULTS, name="chaos").start(),
            await ChaosUpstream(seed=self._seed + 1, mix=FAST_FAULTS, name="chaos-alone").start(),
        ]
        anthropic = await self._serve(self.anthropic.app())
        gemini = await self._serve(self.gemini.app())
        bedrock = await self._serve(self.bedrock.app)
        path = Path(self._tmp.name) / "astra.yml"
        path.write_text(_yaml(self.chaos[0].url, self.chaos[1].url, anthropic, gemini, bedrock))
        self.app = create_app(
            load_routing_table(str(path)), env=ENV, clock=MonotonicClock(), rng=random.Random(self._seed)
        )
        self.base = await self._serve(self.app)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))

    async def _serve(self, app: web.Application) -> str:
        server = TestServer(app)
        await server.start_server(access_log=None)
        self._servers.append(server)
        return str(server.make_url("")).rstrip("/")

    def close(self) -> None:
        self.run(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
        for name in ("astra", "aiohttp", "asyncio"):
            logging.getLogger(name).removeHandler(self._errors)
        self._tmp.cleanup()

    async def _close(self) -> None:
        if self._session is not None:
            await self._session.close()
        for server in reversed(self._servers):
            await server.close()
        for chaos in self.chaos:
            await chaos.close()

    @property
    def client_input_logs(self) -> int:
        return self._errors.client_input

    def _upstream_requests(self) -> int:
        return sum(c.requests for c in self.chaos) + len(self.anthropic.requests) + len(self.gemini.requests)

    def _breaker_open(self) -> bool:
        assert self.app is not None
        return any(b.state != "closed" for b in self.app[STATE].shared.breakers.values())

    def send(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
    ) -> Answer:
        """One request, exactly as given (the path is sent encoded as it is)."""
        before = self._upstream_requests()
        self._errors.take()
        status, got, raw = self.run(self._send(method, path, body, headers or []))
        return Answer(
            status=status,
            headers=got,
            body=raw,
            contacted=self._upstream_requests() > before,
            breaker_open=self._breaker_open(),
            errors=self._errors.take(),
        )

    async def _send(
        self, method: str, path: str, body: bytes, headers: list[tuple[str, str]]
    ) -> tuple[int, Mapping[str, str], bytes]:
        assert self._session is not None
        url = URL(self.base + path, encoded=True)
        async with self._session.request(
            method, url, data=body, headers=headers, skip_auto_headers=("Content-Type",)
        ) as response:
            return response.status, dict(response.headers), await response.read()


@contextmanager
def running_rig(seed: int = 7) -> Iterator[Rig]:
    rig = Rig(seed).start()
    try:
        yield rig
    finally:
        rig.close()


# --- the oracle -----------------------------------------------------------------------------------


class Unacceptable(AssertionError):
    pass


def _fail(answer: Answer, why: str) -> Unacceptable:
    return Unacceptable(f"{why}: HTTP {answer.status} {dict(answer.headers)} {answer.body[:600]!r}")


def check_answer(api: str, answer: Answer) -> None:
    """Raises `Unacceptable` unless `answer` follows every rule for a route of `api`
    (openai | anthropic | gemini). ERROR records of aiohttp's own about the client's bytes
    (`CLIENT_INPUT_LOGS`) are counted in `Rig.client_input_logs`, not held against the sidecar."""
    if answer.errors:
        raise _fail(answer, f"error log records {list(answer.errors)}")
    if b"Traceback" in answer.body:
        raise _fail(answer, "a traceback in the answer")
    content_type = answer.headers.get("Content-Type", "")
    if answer.status == 200 and content_type.startswith("text/event-stream"):
        _check_stream(api, answer)
        return
    if not content_type.startswith("application/json"):
        raise _fail(answer, f"content type {content_type!r}")
    try:
        data = orjson.loads(answer.body)
    except orjson.JSONDecodeError as exc:
        raise _fail(answer, "body is not JSON") from exc
    if answer.status < 400:
        if answer.status != 200 or not isinstance(data, dict):
            raise _fail(answer, "not a JSON object answer")
        return
    message = _error_message(api, data)
    if message is None:
        raise _fail(answer, f"not an error body in {api}'s shape")
    if answer.status >= 500:
        _check_5xx(answer, message)


def _check_5xx(answer: Answer, message: str) -> None:
    if SIDECAR_500 in message:
        raise _fail(answer, "the sidecar's own 500")
    if not answer.contacted and not (answer.status == 503 and answer.breaker_open):
        raise _fail(answer, "a 5xx made by the sidecar itself (no upstream was reached)")


def _error_message(api: str, data: Any) -> str | None:
    """The error's message when `data` is an error body in `api`'s shape, else None."""
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return None
    if api == "openai" and set(error) == {"message", "type", "param", "code"}:
        return str(error["message"])
    if api == "anthropic" and data.get("type") == "error" and isinstance(error.get("type"), str):
        return str(error["message"])
    if api == "gemini" and isinstance(error.get("code"), int) and isinstance(error.get("status"), str):
        return str(error["message"])
    return None


def _events(body: bytes) -> list[tuple[str | None, bytes]]:
    events = []
    for block in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        if not block.strip():
            continue
        name: str | None = None
        data: list[bytes] = []
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data.append(line[5:].strip())
            elif line and not line.startswith(b":"):
                raise Unacceptable(f"not an SSE line: {line[:200]!r}")
        events.append((name, b"\n".join(data)))
    return events


def _check_stream(api: str, answer: Answer) -> None:
    if not answer.body.replace(b"\r\n", b"\n").endswith(b"\n\n"):
        raise _fail(answer, "a stream that does not end with a whole event")
    try:
        events = _events(answer.body)
    except Unacceptable as exc:
        raise _fail(answer, str(exc)) from exc
    if not events:
        raise _fail(answer, "an empty stream")
    payloads: list[Any] = []
    for _, data in events:
        if data == b"[DONE]":
            payloads.append("[DONE]")
            continue
        try:
            payloads.append(orjson.loads(data))
        except orjson.JSONDecodeError as exc:
            raise _fail(answer, f"a stream event that is not JSON: {data[:200]!r}") from exc
    last_name, _ = events[-1]
    last = payloads[-1]
    error = _error_message(api, last) if isinstance(last, dict) else None
    if error is not None:
        if any(isinstance(p, dict) and _error_message(api, p) for p in payloads[:-1]):
            raise _fail(answer, "more than one error event")
        if SIDECAR_500 in error:
            raise _fail(answer, "the sidecar's own 500, in-stream")
        return
    ends = {
        "openai": last == "[DONE]",
        "anthropic": last_name == "message_stop",
        "gemini": b'"finishReason"' in answer.body,
    }
    if not ends[api]:
        raise _fail(answer, f"a {api} stream without its end")
