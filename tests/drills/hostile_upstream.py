"""The hostile-upstream drill: agents whose upstream answers with endless and huge bodies, gzip
bombs (plain and streamed), a 100 MB SSE line, 10,000 headers, endless keep-alive comments, a
redirect to the metadata address and an encoding never asked for
(tests.sidecar.hostile.upstreams), while a healthy mock agent on the same sidecar is probed.

    .venv/bin/python -m tests.drills.hostile_upstream [--per-kind 8] [--rounds 3] [--report out/x.json]

The sidecar runs in its own process (tests.drills.hostile_sidecar) with the default limits; one
phase per kind sends `per_kind` concurrent requests, `rounds` times. Every answer must be the
refusal its kind earns: a 502 in OpenAI's shape with `upstream_too_large` / `upstream_refused`
and `x-astra-attempts: 1`, or, when a first good event began the stream, a 200 stream whose one
last event is that error. Anything else (a transport error, a hang, another answer) is lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.drills.hostile_rig import PROBE_AGENT, Child, Phase, phase, report_of, sidecar_process, summary
from tests.sidecar.hostile.upstreams import HostileUpstream

#: kind: (streamed?, the error code of its refusal)
EXPECTED = {
    "endless-stream": (True, "upstream_too_large"),
    "comments": (True, "upstream_too_large"),
    "sse-line": (True, "upstream_too_large"),
    "gzip-bomb-stream": (True, "upstream_too_large"),
    "endless-json": (False, "upstream_too_large"),
    "huge-json": (False, "upstream_too_large"),
    "gzip-bomb": (False, "upstream_too_large"),
    "headers": (False, "upstream_too_large"),
    "redirect": (False, "upstream_refused"),
    "brotli": (False, "upstream_refused"),
}
CLIENT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class UpstreamDrillConfig:
    per_kind: int = 2
    rounds: int = 1


def astra_yml(upstream: HostileUpstream) -> str:
    agents = "\n".join(
        f'  {kind}: {{model: {{provider: vllm, modelId: m, endpoint: "{upstream.url(kind)}"}}}}'
        for kind in EXPECTED
    )
    return f"""version: 1
settings:
  requestTimeoutMs: 30000
  retry: {{maxRetries: 2, baseDelayMs: 10, maxDelayMs: 50}}
  # Each request meets its upstream: an open breaker would answer most of them circuit_open.
  circuitBreaker: {{failureThreshold: 100000}}
agents:
  {PROBE_AGENT}: {{model: {{provider: mock, modelId: probe}}}}
{agents}
"""


def judge(kind: str, status: int, headers: Any, raw: bytes) -> str | None:
    """None when the answer is the refusal `kind` earns, else what is wrong with it."""
    stream, code = EXPECTED[kind]
    try:
        if status == 200 and stream:
            last = raw.rstrip().rsplit(b"\n\n", 1)[-1].removeprefix(b"data: ")
            error = json.loads(last)["error"]
        elif status == 502:
            error = json.loads(raw)["error"]
        else:
            return f"status {status}"
    except (ValueError, KeyError, TypeError):
        return "not an error in OpenAI's shape"
    if error.get("code") != code or set(error) != {"message", "type", "param", "code"}:
        return f"error {error.get('code')}"
    if headers.get("x-astra-attempts") != "1" or "Location" in headers or b"Traceback" in raw:
        return "retried, or a Location or traceback passed on"
    return None


async def _one(http: aiohttp.ClientSession, child: Child, kind: str, record: Phase) -> None:
    stream, _ = EXPECTED[kind]
    body = {"model": kind, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    try:
        async with http.post(child.url + "/v1/chat/completions", json=body) as response:
            raw = await response.read()
            problem = judge(kind, response.status, response.headers, raw)
    except (aiohttp.ClientError, TimeoutError) as exc:
        problem = type(exc).__name__
    record.count(problem or "refused as expected", problem is None)


async def _attack(child: Child, kind: str, config: UpstreamDrillConfig) -> Phase:
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S)
    async with phase(child, kind) as record, aiohttp.ClientSession(timeout=timeout) as http:
        record.expected = EXPECTED[kind][1]
        for _ in range(config.rounds):
            await asyncio.gather(*(_one(http, child, kind, record) for _ in range(config.per_kind)))
    return record


async def run_upstream_drill(config: UpstreamDrillConfig, workdir: Path | None = None) -> dict[str, Any]:
    upstream = await HostileUpstream().start()
    try:
        with tempfile.TemporaryDirectory(prefix="hostile-upstream-") as scratch:
            where = workdir or Path(scratch)
            yml = where / "astra.yml"
            yml.write_text(astra_yml(upstream))
            async with sidecar_process(yml, where / "access.log") as child:
                before = await child.settle()
                phases = [await _attack(child, kind, config) for kind in EXPECTED]
                after = await child.settle()
            report = report_of("hostile-upstream", phases, before, after)
            report["upstream"] = {"requests": dict(upstream.requests), "bytes_sent": dict(upstream.sent)}
            report["config"] = {"per_kind": config.per_kind, "rounds": config.rounds}
            return report
    finally:
        await upstream.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--report", type=Path)
    args = parser.parse_args(argv)
    report = asyncio.run(run_upstream_drill(UpstreamDrillConfig(args.per_kind, args.rounds)))
    print(summary(report))
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if report["lost"] or report["probe_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
