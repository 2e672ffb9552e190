"""The added p50 of a quota check: one in-process sidecar (mock provider) served N requests
without quotas, with in-process quotas, and with quotas on a loopback Redis (REDIS_URL, or a
redis-server this script starts on a free port). Prints each p50 and its ratio to the baseline.

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


async def _p50(yaml_text: str, env: dict[str, str], count: int) -> float:
    folder = Path(tempfile.mkdtemp())
    (folder / "astra.yml").write_text(textwrap.dedent(yaml_text))
    app = create_app(load_routing_table(folder / "astra.yml"), env=env)
    server = TestServer(app)
    await server.start_server()
    url = str(server.make_url("/v1/chat/completions"))
    body = {"model": "bench", "messages": [{"role": "user", "content": "hi"}]}
    samples: list[float] = []
    async with aiohttp.ClientSession() as session:
        for index in range(count + 200):
            started = time.perf_counter()
            async with session.post(url, json=body) as response:
                await response.read()
                assert response.status == 200, await response.text()
            if index >= 200:  # warm-up
                samples.append(time.perf_counter() - started)
    await server.close()
    return statistics.median(samples) * 1e6


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
        base = await _p50(_AGENT % "", env, count)
        local = await _p50(_AGENT % (_QUOTA % "local"), env, count)
        redis = await _p50(_AGENT % (_QUOTA % "redis"), env, count)
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
