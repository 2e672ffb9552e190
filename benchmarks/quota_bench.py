"""The added p50 of a quota check: three in-process sidecars (mock provider) — without quotas,
with in-process quotas, with quotas on a loopback Redis (a redis-server this script starts on a
free port) — served N requests each, interleaved (one to each per round, so a shared machine's
load drifts over all three alike). Prints each p50 and its ratio to the baseline.

    .venv/bin/python benchmarks/quota_bench.py [requests]
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from astra_sidecar.compiler.loader import load_routing_table
from astra_sidecar.sidecar.app import create_app

_AGENT = """
    version: 1
    settings: {state: {redis: {urlEnv: REDIS_URL, timeoutMs: 500}}}
    agents:
      bench:
        model: {provider: mock, modelId: m, mock: {reply: "ok"}}
        %s
    """
_QUOTA = "quotas: {requests: {limit: 100000000, windowMs: 60000}, store: %s, onStateUnavailable: deny}"


async def _server(yaml_text: str, env: dict[str, str]) -> TestServer:
    folder = Path(tempfile.mkdtemp())
    (folder / "astra.yml").write_text(textwrap.dedent(yaml_text))
    server = TestServer(create_app(load_routing_table(folder / "astra.yml"), env=env))
    await server.start_server()
    return server


async def _p50s(yaml_texts: list[str], env: dict[str, str], count: int) -> list[float]:
    """The p50 (µs) of each config's requests, taken interleaved: each round sends one request to
    every config's sidecar, in turn, so drift of a shared machine's load hits them all alike."""
    servers = [await _server(text, env) for text in yaml_texts]
    urls = [str(server.make_url("/v1/chat/completions")) for server in servers]
    body = {"model": "bench", "messages": [{"role": "user", "content": "hi"}]}
    samples: list[list[float]] = [[] for _ in urls]
    async with aiohttp.ClientSession() as session:
        for index in range(count + 200):
            for offset in range(len(urls)):
                which = (index + offset) % len(urls)
                started = time.perf_counter()
                async with session.post(urls[which], json=body) as response:
                    await response.read()
                    assert response.status == 200, await response.text()
                if index >= 200:  # warm-up
                    samples[which].append(time.perf_counter() - started)
    for server in servers:
        await server.close()
    return [statistics.median(s) * 1e6 for s in samples]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_ping(port: int) -> None:
    import redis

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis.Redis(port=port, socket_timeout=0.5).ping():
                return
        except redis.RedisError:
            time.sleep(0.02)
    raise SystemExit("redis-server did not answer PING")


async def main(count: int) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        env = {"REDIS_URL": f"redis://127.0.0.1:{port}/0"}
        _wait_for_ping(port)
        configs = [_AGENT % "", _AGENT % (_QUOTA % "local"), _AGENT % (_QUOTA % "redis")]
        base, local, redis = await _p50s(configs, env, count)
    finally:
        process.kill()
    print(f"p50 without quotas   {base:8.1f} µs")
    print(
        f"p50 in-process quota {local:8.1f} µs  added {local - base:6.1f} µs = {100 * (local - base) / base:5.1f} %"
    )
    print(
        f"p50 Redis quota      {redis:8.1f} µs  added {redis - base:6.1f} µs = {100 * (redis - base) / base:5.1f} %"
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
