"""What a sidecar loads: the AWS, Google, Redis and Jinja2 libraries only when the table needs them.

Each case compiles astra.yml here, then serves the compiled table in a fresh interpreter (the test
process has long imported everything), answers one request and lists the heavy modules that got
imported. (Compiling astra.yml itself uses Jinja2, to check templates.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from astra_sidecar.compiler.loader import compile_file
from astra_sidecar.compiler.table import dump_table_json

HEAVY = ("botocore", "google.auth", "redis", "jinja2")

_PROBE = textwrap.dedent("""
    import asyncio, json, sys
    from aiohttp.test_utils import TestClient, TestServer
    from astra_sidecar.compiler.loader import load_routing_table
    from astra_sidecar.sidecar.app import create_app

    async def main():
        app = create_app(load_routing_table(sys.argv[1]), env={"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k", "GEMINI_API_KEY": "k"})
        async with TestClient(TestServer(app)) as client:
            answer = await client.post("/v1/chat/completions", json={"model": "demo", "messages": [{"role": "user", "content": "hi"}]})
            assert answer.status == 200, await answer.text()
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("botocore", "google", "redis", "jinja2"))))

    asyncio.run(main())
""")


def _loaded_after_serving(tmp_path: Path, config: str) -> set[str]:
    source = tmp_path / "astra.yml"
    source.write_text(textwrap.dedent(config))
    table, diagnostics = compile_file(str(source))
    assert table is not None, diagnostics
    path = tmp_path / "routing-table.json"
    path.write_text(dump_table_json(table))
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    modules = json.loads(done.stdout.strip().splitlines()[-1])
    return {heavy for heavy in HEAVY for module in modules if module == heavy or module.startswith(heavy + ".")}


WITHOUT_AWS_OR_VERTEX = """
    version: 1
    agents:
      demo: {model: {provider: mock, modelId: m}}
      chat: {model: {provider: openai, modelId: gpt-4o-mini}}
      claude: {model: {provider: claude, modelId: claude-sonnet-4-5}}
      studio: {model: {provider: gemini, modelId: gemini-2.5-flash}}
"""


def test_a_table_without_bedrock_vertex_redis_or_prompts_loads_none_of_their_libraries(tmp_path: Path) -> None:
    assert _loaded_after_serving(tmp_path, WITHOUT_AWS_OR_VERTEX) == set()


def test_a_bedrock_cluster_loads_botocore(tmp_path: Path) -> None:
    config = WITHOUT_AWS_OR_VERTEX + "      nova: {model: {provider: bedrock, modelId: amazon.nova-lite-v1:0, region: us-east-1}}\n"
    assert "botocore" in _loaded_after_serving(tmp_path, config)


def test_a_system_prompt_loads_jinja2(tmp_path: Path) -> None:
    config = WITHOUT_AWS_OR_VERTEX + "      helper: {model: {provider: mock, modelId: m}, systemPrompt: 'Hi {{ agent.id }}'}\n"
    assert _loaded_after_serving(tmp_path, config) == {"jinja2"}
