"""What a sidecar loads: the AWS, Google, Redis and Jinja2 libraries only when the table needs them,
the upstream adapters of the wire formats its clusters speak, and the ingress APIs other than
OpenAI Chat Completions at their first request (`sidecar/protocols/registry.py`, `lazy_ingress.py`).

Each case compiles astra.yml here, then serves the compiled table in a fresh interpreter (the test
process has long imported everything), sends the case's requests and lists the modules that got
imported after each. (Compiling astra.yml itself uses Jinja2, to check templates.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astra_sidecar.compiler.loader import compile_file
from astra_sidecar.compiler.table import dump_table_json

HEAVY = ("botocore", "google.auth", "redis", "jinja2")
PROTOCOLS = "astra_sidecar.sidecar.protocols"
#: The codec modules of the APIs loaded at their first request.
LAZY_INGRESS = tuple(
    f"{PROTOCOLS}.{api}.{part}"
    for api in ("anthropic", "gemini", "responses")
    for part in ("ingress", "native")
)
KEYS = {"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k", "GEMINI_API_KEY": "k"}

_PROBE = textwrap.dedent("""
    import asyncio, json, sys
    from aiohttp.test_utils import TestClient, TestServer
    from astra_sidecar.compiler.loader import load_routing_table
    from astra_sidecar.sidecar.app import create_app

    WATCHED = ("botocore", "google", "redis", "jinja2", "astra_sidecar")

    def loaded():
        return sorted(m for m in sys.modules if m.split(".")[0] in WATCHED)

    async def main(table, steps, env):
        app = create_app(load_routing_table(table), env=env)
        async with TestClient(TestServer(app)) as client:
            seen = [{"status": None, "body": None, "modules": loaded()}]
            for step in steps:
                answer = await client.request(step["method"], step["path"], json=step.get("json"), headers=step.get("headers"))
                text = await answer.text()
                seen.append({"status": answer.status, "body": json.loads(text) if text else None, "modules": loaded()})
        print(json.dumps(seen))

    asyncio.run(main(sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])))
""")


@dataclass(frozen=True)
class Seen:
    """One request's answer (none for the first: the sidecar as it started) and the modules
    imported once it was answered."""

    status: int | None
    body: Any
    modules: frozenset[str]

    def loads(self, package: str) -> bool:
        """Whether code of `package` was imported: its `__init__` (a docstring) and the route
        declarations the app registers at start (`ingress_routes`) do not count."""
        light = {package, f"{package}.ingress_routes"}
        return any(m.startswith(package + ".") and m not in light for m in self.modules)


def _step(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"method": method, "path": path, "json": body, "headers": headers}


HI = [{"role": "user", "content": "hi"}]
CHAT = _step("POST", "/v1/chat/completions", {"model": "demo", "messages": HI})
MESSAGES = _step("POST", "/v1/anthropic/demo/v1/messages", {"max_tokens": 16, "messages": HI})
ANTHROPIC_UNKNOWN = _step("GET", "/v1/anthropic/demo/v1/nothing")


def _serve(
    tmp_path: Path, config: str, steps: list[dict[str, Any]], env: dict[str, str] | None = None
) -> list[Seen]:
    source = tmp_path / "astra.yml"
    source.write_text(textwrap.dedent(config))
    table, diagnostics = compile_file(str(source))
    assert table is not None, diagnostics
    path = tmp_path / "routing-table.json"
    path.write_text(dump_table_json(table))
    argv = [
        sys.executable,
        "-c",
        _PROBE,
        str(path),
        json.dumps(steps),
        json.dumps(KEYS if env is None else env),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    return [Seen(s["status"], s["body"], frozenset(s["modules"])) for s in seen]


def _loaded_after_serving(tmp_path: Path, config: str) -> set[str]:
    answered = _serve(tmp_path, config, [CHAT])[-1]
    assert answered.status == 200, answered.body
    return {heavy for heavy in HEAVY if answered.loads(heavy)}


WITHOUT_AWS_OR_VERTEX = """
    version: 1
    agents:
      demo: {model: {provider: mock, modelId: m}}
      chat: {model: {provider: openai, modelId: gpt-4o-mini}}
      claude: {model: {provider: claude, modelId: claude-sonnet-4-5}}
      studio: {model: {provider: gemini, modelId: gemini-2.5-flash}}
"""

OPENAI_AND_CLAUDE = """
    version: 1
    agents:
      demo: {model: {provider: mock, modelId: m}}
      chat: {model: {provider: openai, modelId: gpt-4o-mini}}
      claude: {model: {provider: claude, modelId: claude-sonnet-4-5}}
"""


def test_a_table_without_bedrock_vertex_redis_or_prompts_loads_none_of_their_libraries(
    tmp_path: Path,
) -> None:
    assert _loaded_after_serving(tmp_path, WITHOUT_AWS_OR_VERTEX) == set()


def test_a_bedrock_cluster_loads_botocore(tmp_path: Path) -> None:
    config = (
        WITHOUT_AWS_OR_VERTEX
        + "      nova: {model: {provider: bedrock, modelId: amazon.nova-lite-v1:0, region: us-east-1}}\n"
    )
    assert "botocore" in _loaded_after_serving(tmp_path, config)


def test_a_system_prompt_loads_jinja2(tmp_path: Path) -> None:
    config = (
        WITHOUT_AWS_OR_VERTEX
        + "      helper: {model: {provider: mock, modelId: m}, systemPrompt: 'Hi {{ agent.id }}'}\n"
    )
    assert _loaded_after_serving(tmp_path, config) == {"jinja2"}


def test_openai_traffic_loads_the_adapters_of_the_tables_wire_formats_and_no_other_api(
    tmp_path: Path,
) -> None:
    started, answered = _serve(tmp_path, OPENAI_AND_CLAUDE, [CHAT])
    assert answered.status == 200, answered.body
    for seen in (started, answered):
        assert f"{PROTOCOLS}.anthropic.adapter" in seen.modules  # the claude cluster's, at start
        assert not seen.loads(f"{PROTOCOLS}.bedrock")
        assert not seen.loads(f"{PROTOCOLS}.gemini")
        assert seen.modules.isdisjoint(LAZY_INGRESS)


def test_the_first_anthropic_request_loads_that_api_and_is_answered_in_its_shape(tmp_path: Path) -> None:
    _, chatted, messaged, again = _serve(tmp_path, OPENAI_AND_CLAUDE, [CHAT, MESSAGES, MESSAGES])
    assert f"{PROTOCOLS}.anthropic.ingress" not in chatted.modules
    assert messaged.status == again.status == 200, messaged.body
    assert messaged.body["type"] == again.body["type"] == "message"
    assert {f"{PROTOCOLS}.anthropic.ingress", f"{PROTOCOLS}.anthropic.native"} <= messaged.modules
    # Its count route's providers, and the other APIs, stay unloaded.
    assert not messaged.loads(f"{PROTOCOLS}.bedrock") and not messaged.loads(f"{PROTOCOLS}.gemini")
    assert f"{PROTOCOLS}.responses.ingress" not in messaged.modules


def test_an_unknown_anthropic_route_is_a_404_in_anthropics_shape_before_any_anthropic_request(
    tmp_path: Path,
) -> None:
    _, unknown, messaged = _serve(tmp_path, OPENAI_AND_CLAUDE, [ANTHROPIC_UNKNOWN, MESSAGES])
    assert unknown.status == 404
    assert unknown.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "no such route: GET /v1/anthropic/demo/v1/nothing"},
    }
    assert messaged.status == 200 and messaged.body["type"] == "message", messaged.body


def test_a_refused_token_is_answered_in_the_shape_of_the_api_called_before_its_first_request(
    tmp_path: Path,
) -> None:
    config = OPENAI_AND_CLAUDE + "    settings:\n      inboundAuth: {tokenEnv: ASTRA_TOKEN}\n"
    gemini = _step("POST", "/v1/gemini/demo/v1beta/models/m:generateContent", {"contents": []})
    anthropic, google = _serve(tmp_path, config, [MESSAGES, gemini], {**KEYS, "ASTRA_TOKEN": "t"})[1:]
    assert (anthropic.status, anthropic.body["type"], anthropic.body["error"]["type"]) == (
        401,
        "error",
        "authentication_error",
    )
    assert (google.status, google.body["error"]["code"], google.body["error"]["status"]) == (
        401,
        401,
        "UNAUTHENTICATED",
    )
