"""The hostile-client drill: slowloris (request heads sent a byte at a time), slow bodies, slow
readers (streams never read, on a small receive buffer), 2,000 idle connections, 10,000 distinct
bogus model names, log-injection strings and valid 8 MiB bodies several at once, while a healthy
mock agent on the same sidecar is probed (tests.drills.hostile_rig).

    .venv/bin/python -m tests.drills.hostile_client [--scale 10] [--report out/x.json]

The sidecar (its own process, tests.drills.hostile_sidecar) has 1 s client bounds
(`clientHeaderTimeoutMs`, `clientBodyTimeoutMs`, `clientStallMs`), so each attack ends within
seconds. What counts as lost, per phase: a slowloris or idle connection the sidecar did not close
in time, a slow body not answered 408, a stalled reader not cut, a bogus model not answered 404
`model_not_found`, an injection request not answered 4xx, a large body not answered 200; and,
after the drill, a metric label set that a client's string added, or an access line that is not
one valid JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.drills.hostile_rig import PROBE_AGENT, Child, Phase, phase, report_of, sidecar_process, summary
from tests.sidecar.hostile.served import chat_request, closed_by_peer, connect, cut_without_reading
from tests.sidecar.hostile.upstreams import HostileUpstream

BOUND_MS = 1000
SLACK_S = 3.0
INJECTIONS = (
    "a\nb", '{"level": "error", "msg": "forged"}\n', "\x1b[31mred\x1b[0m", 'quote " backslash \\',
    "\u2028line\u2029sep", "\x00nul\x07bel", "é ü 中文 🙂",
)  # fmt: skip
CHAT = "/v1/chat/completions"


@dataclass(frozen=True)
class ClientDrillConfig:
    slowloris: int = 100
    slow_bodies: int = 50
    slow_readers: int = 20
    idle: int = 2000
    bogus_models: int = 10_000
    injection_rounds: int = 10
    #: Valid 8 MiB chat bodies (a long conversation of small messages), sent this many at once...
    large_bodies: int = 4
    #: ... this many times.
    large_rounds: int = 2


def astra_yml(upstream: HostileUpstream) -> str:
    return f"""version: 1
settings:
  limits: {{clientHeaderTimeoutMs: {BOUND_MS}, clientBodyTimeoutMs: {BOUND_MS}, clientStallMs: {BOUND_MS}}}
agents:
  {PROBE_AGENT}: {{model: {{provider: mock, modelId: probe}}}}
  endless: {{model: {{provider: vllm, modelId: m, endpoint: "{upstream.url("endless-stream")}"}}}}
  large: {{model: {{provider: vllm, modelId: m, endpoint: "{upstream.url("good")}"}}}}
"""


def _body(model: str, stream: bool = False) -> bytes:
    return json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    ).encode()


async def _slowloris(port: int, record: Phase) -> None:
    loop = asyncio.get_running_loop()
    head = chat_request(CHAT, _body(PROBE_AGENT)).split(b"\r\n\r\n", 1)[0]
    sock = await connect(port)
    started = time.monotonic()
    closed = False
    try:
        for byte in head:
            await loop.sock_sendall(sock, bytes([byte]))
            if await closed_by_peer(sock, timeout=0.05):
                closed = True
                break
        closed = closed or await closed_by_peer(sock, timeout=SLACK_S)
    except OSError:
        closed = True
    finally:
        sock.close()
    in_time = closed and time.monotonic() - started < BOUND_MS / 1000 + SLACK_S
    record.count("closed by the header timeout" if in_time else "still open", in_time)


async def _slow_body(port: int, record: Phase) -> None:
    loop = asyncio.get_running_loop()
    body = _body(PROBE_AGENT)
    sock = await connect(port)
    answer = b""
    try:
        await loop.sock_sendall(sock, chat_request(CHAT, body)[: -len(body)] + body[:3])
        deadline = time.monotonic() + BOUND_MS / 1000 + SLACK_S
        while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
            try:
                await loop.sock_sendall(sock, b" ")
                answer += await asyncio.wait_for(loop.sock_recv(sock, 65536), 0.1)
            except TimeoutError:
                continue
            except OSError:
                break
    finally:
        sock.close()
    ok = answer.startswith(b"HTTP/1.1 408")
    record.count("408 request_timeout" if ok else f"answer {answer[:12]!r}", ok)


async def _slow_reader(port: int, record: Phase) -> None:
    sock = await connect(port, rcvbuf=4096)
    try:
        await asyncio.get_running_loop().sock_sendall(sock, chat_request(CHAT, _body("endless", stream=True)))
        cut = await cut_without_reading(sock, timeout=BOUND_MS / 1000 * 1.5 + SLACK_S)
    finally:
        sock.close()
    record.count("cut as stalled" if cut else "not cut", cut)


async def _idle(child: Child, count: int, record: Phase) -> None:
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            socks.append(await connect(child.port))
        record.notes["open_at_peak"] = (await child.stats())["connections"]
        closed = await asyncio.gather(
            *(closed_by_peer(s, timeout=BOUND_MS / 1000 + SLACK_S * 3) for s in socks)
        )
    finally:
        for sock in socks:
            sock.close()
    for was_closed in closed:
        record.count("closed when idle" if was_closed else "still open", was_closed)


def _label_sets(text: str) -> dict[str, set[tuple[tuple[str, str], ...]]]:
    return {
        f.name: {tuple(sorted(s.labels.items())) for s in f.samples}
        for f in text_string_to_metric_families(text)
    }


async def _bogus_models(child: Child, count: int, record: Phase) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as http:
        async with http.get(child.url + "/metrics") as r:
            before = _label_sets(await r.text())

        async def one(index: int) -> None:
            model = f"bogus-{index}-" + "x" * (index % 64)
            async with http.post(
                child.url + CHAT, data=_body(model), headers={"Content-Type": "application/json"}
            ) as r:
                raw = await r.read()
            ok = r.status == 404 and json.loads(raw)["error"]["code"] == "model_not_found"
            record.count("404 model_not_found" if ok else f"status {r.status}", ok)

        for start in range(0, count, 500):
            await asyncio.gather(*(one(i) for i in range(start, min(count, start + 500))))
        async with http.get(child.url + "/metrics") as r:
            after = await r.text()
    added = sum(len(sets - before.get(name, set())) for name, sets in _label_sets(after).items())
    record.notes["label_sets_added"] = added
    record.lost += added + ("bogus" in after)


async def _injections(child: Child, rounds: int, record: Phase) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(rounds):
            for text in INJECTIONS:
                printable = "".join(c for c in text if " " <= c <= "~")
                headers = {
                    "Content-Type": "application/json",
                    "x-request-id": printable,
                    "user-agent": printable,
                }
                for path in (CHAT, f"/v1/anthropic/{quote(text, safe='')}/v1/messages"):
                    async with http.post(child.url + path, data=_body(text), headers=headers) as r:
                        await r.read()
                    record.count(f"{r.status}", 400 <= r.status < 500)


def large_body(size: int = 8_000_000) -> bytes:
    """A valid chat body of about `size` bytes (under the 8 MiB `maxBodyBytes`): small messages."""
    turn = {"role": "user", "content": "a short message of a long conversation, é"}
    count = size // (len(json.dumps(turn)) + 2)
    return json.dumps({"model": "large", "messages": [turn] * count}).encode()


async def _large_bodies(child: Child, config: ClientDrillConfig, record: Phase) -> None:
    body = await asyncio.to_thread(large_body)
    record.notes["body_bytes"] = len(body)
    async with aiohttp.ClientSession() as http:

        async def one() -> None:
            async with http.post(
                child.url + CHAT, data=body, headers={"Content-Type": "application/json"}
            ) as r:
                await r.read()
            record.count("200" if r.status == 200 else f"status {r.status}", r.status == 200)

        for _ in range(config.large_rounds):
            await asyncio.gather(*(one() for _ in range(config.large_bodies)))


def _access_lines_problems(path: Path) -> tuple[int, int]:
    """(access lines, lines that are not one JSON object without raw control characters)."""
    lines = path.read_bytes().split(b"\n")[:-1]
    bad = 0
    for line in lines:
        try:
            bad += not isinstance(json.loads(line), dict) or any(b < 0x20 for b in line)
        except ValueError:
            bad += 1
    return len(lines), bad


async def _attacks(child: Child, config: ClientDrillConfig) -> list[Phase]:
    phases: list[Phase] = []
    async with phase(child, "slowloris") as record:
        await asyncio.gather(*(_slowloris(child.port, record) for _ in range(config.slowloris)))
    phases.append(record)
    async with phase(child, "slow-body") as record:
        await asyncio.gather(*(_slow_body(child.port, record) for _ in range(config.slow_bodies)))
    phases.append(record)
    async with phase(child, "slow-readers") as record:
        await asyncio.gather(*(_slow_reader(child.port, record) for _ in range(config.slow_readers)))
    phases.append(record)
    async with phase(child, "idle-connections") as record:
        await _idle(child, config.idle, record)
    phases.append(record)
    async with phase(child, "bogus-models") as record:
        await _bogus_models(child, config.bogus_models, record)
    phases.append(record)
    async with phase(child, "log-injection") as record:
        await _injections(child, config.injection_rounds, record)
    phases.append(record)
    async with phase(child, "large-json-bodies") as record:
        await _large_bodies(child, config, record)
    phases.append(record)
    return phases


async def run_client_drill(config: ClientDrillConfig) -> dict[str, Any]:
    upstream = await HostileUpstream().start()
    try:
        with tempfile.TemporaryDirectory(prefix="hostile-client-") as scratch:
            yml, access = Path(scratch) / "astra.yml", Path(scratch) / "access.log"
            yml.write_text(astra_yml(upstream))
            async with sidecar_process(yml, access) as child:
                before = await child.settle()
                phases = await _attacks(child, config)
                after = await child.settle()
            lines, bad = _access_lines_problems(access)
            stalled = sum(
                b'"error_code":"client_stalled"' in line for line in access.read_bytes().split(b"\n")
            )
    finally:
        await upstream.close()
    report = report_of("hostile-client", phases, before, after)
    report["access_lines"] = {"lines": lines, "not_one_json_line": bad, "client_stalled": stalled}
    report["lost"] += bad + max(0, config.slow_readers - stalled)
    report["config"] = config.__dict__
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale", type=int, default=10, help="slowloris, slow bodies, readers and injections x N"
    )
    parser.add_argument("--report", type=Path)
    args = parser.parse_args(argv)
    n = args.scale
    config = ClientDrillConfig(100 * n, 20 * n, 10 * n, 2000, 10_000, 10 * n, 8, 2 * n)
    report = asyncio.run(run_client_drill(config))
    print(summary(report))
    print(f"access lines {report['access_lines']}")
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if report["lost"] or report["probe_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
