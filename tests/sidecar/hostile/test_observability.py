"""Observability a client cannot abuse: no client-chosen string becomes a metric label value
(10,000 bogus model names leave every family's label sets as they were), every access line stays
one valid JSON line whatever the path, headers and model carry, a caller's x-request-id is kept
only when it is a short plain token, and `/metrics` can be put behind the inbound token."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.sidecar.harness import compile_yaml
from tests.sidecar.hostile.served import Served, served

YML = """
version: 1
settings: {retry: {maxRetries: 0}}
agents:
  healthy: {model: {provider: mock, modelId: echo}}
"""
INJECTIONS = (
    "a\nb",
    '{"level": "error", "msg": "forged"}\n',
    "\x1b[31mred\x1b[0m",
    'quote " and backslash \\ ',
    "\u2028line\u2029sep",
    "\x00nul\x07bel",
    "é ü 中文 🙂",
)


@pytest.fixture
async def sidecar(tmp_path: Path) -> AsyncIterator[Served]:
    async with served(compile_yaml(tmp_path, YML)) as running:
        yield running


def _label_sets(text: str) -> dict[str, set[tuple[tuple[str, str], ...]]]:
    families: dict[str, set[tuple[tuple[str, str], ...]]] = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = {tuple(sorted(s.labels.items())) for s in family.samples}
    return families


async def test_ten_thousand_bogus_model_names_add_no_label_value(sidecar: Served) -> None:
    async with aiohttp.ClientSession() as http:
        chat = sidecar.url + "/v1/chat/completions"

        async def scrape() -> str:
            async with http.get(sidecar.url + "/metrics") as r:
                return await r.text()

        async with http.post(
            chat, json={"model": "healthy", "messages": [{"role": "user", "content": "hi"}]}
        ) as r:
            assert r.status == 200
        before = _label_sets(await scrape())
        for index in range(10_000):
            body = {
                "model": f"bogus-{index}-{'x' * (index % 50)}",
                "messages": [{"role": "user", "content": "hi"}],
            }
            async with http.post(chat, json=body) as r:
                assert r.status == 404
            if index % 2_500 == 0:  # and some through the routes that name the agent in the path
                async with http.post(sidecar.url + f"/v1/anthropic/bogus-{index}/v1/messages", json={}) as r:
                    assert r.status in (400, 404)
        after = await scrape()
    assert _label_sets(after) == before
    assert "bogus" not in after


async def test_log_injection_strings_stay_inside_one_json_line(sidecar: Served) -> None:
    async with aiohttp.ClientSession() as http:
        for text in INJECTIONS:
            body = {"model": text, "messages": [{"role": "user", "content": text}]}
            safe = "".join(c for c in text if " " <= c <= "~")  # what an HTTP client lets through
            headers = {"x-request-id": safe, "user-agent": safe, "x-tenant": safe}
            async with http.post(sidecar.url + "/v1/chat/completions", json=body, headers=headers) as r:
                assert r.status == 404
            path = "/v1/anthropic/" + aiohttp.helpers.quote(text, safe="") + "/v1/messages"  # type: ignore[attr-defined]
            async with http.post(sidecar.url + path, json=body) as r:
                assert r.status in (400, 404)
    assert len(sidecar.access.lines) == 2 * len(INJECTIONS)
    for line in sidecar.access.lines:
        assert b"\n" not in line and b"\r" not in line and b"\x1b" not in line
        record = json.loads(line)
        assert set(record) <= {
            "ts", "request_id", "route", "method", "path", "agent", "provider", "status", "attempts",
            "stream", "latency_ms", "prompt_tokens", "completion_tokens", "error_code",
        }  # fmt: skip
    # What the path carried is kept, escaped, exactly as sent (decoded): as the agent the path
    # names, or in the path of a request no route matched.
    fields = [str(json.loads(line).get(key)) for line in sidecar.access.lines for key in ("agent", "path")]
    assert all(any(text in value for value in fields) for text in INJECTIONS)


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("req-123.abc:7_z", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("has space", False),
        ("semi;colon", False),
        ('{"a": 1}', False),
        ("é", False),
    ],
)
async def test_a_request_id_is_kept_only_when_it_is_a_short_plain_token(
    sidecar: Served, given: str, kept: bool
) -> None:
    body = {"model": "healthy", "messages": [{"role": "user", "content": "hi"}]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(sidecar.url + "/v1/chat/completions", json=body, headers={"x-request-id": given}) as r,
    ):
        assert r.status == 200
        answered = r.headers["x-request-id"]
    (record,) = sidecar.access.records()
    assert record["request_id"] == answered
    if kept:
        assert answered == given
    else:
        assert answered != given and len(answered) == 24 and int(answered, 16) >= 0


async def test_metrics_can_require_the_inbound_token(tmp_path: Path) -> None:
    yml = """
version: 1
settings: {inboundAuth: {tokenEnv: SIDECAR_TOKEN, protectMetrics: true}}
agents:
  healthy: {model: {provider: mock, modelId: echo}}
"""
    async with (
        served(compile_yaml(tmp_path, yml), env={"SIDECAR_TOKEN": "t0ken"}) as sidecar,
        aiohttp.ClientSession() as http,
    ):
        async with http.get(sidecar.url + "/metrics") as r:
            assert r.status == 401 and (await r.json())["error"]["code"] == "invalid_api_key"
        async with http.get(sidecar.url + "/metrics", headers={"Authorization": "Bearer t0ken"}) as r:
            assert r.status == 200 and "astra_requests_total" in await r.text()
        for path in ("/healthz", "/readyz"):
            async with http.get(sidecar.url + path) as r:
                assert r.status == 200
