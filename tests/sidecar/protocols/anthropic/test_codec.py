"""The Anthropic ingress codec's parts that the request flow reads (`ingress.CODEC`): the parsed
call, the size estimate's inputs and the route table."""

from __future__ import annotations

import pytest

from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.anthropic import ingress
from astra_sidecar.sidecar.protocols.anthropic.ingress import CODEC
from astra_sidecar.sidecar.protocols.anthropic.ingress_routes import ANTHROPIC
from astra_sidecar.sidecar.protocols.codec import RequestSize, Route
from astra_sidecar.sidecar.protocols.lazy_ingress import resolve
from tests.sidecar.protocols.anthropic.helpers import USER, WEATHER

ROUTE = {"agent": "claude-native"}


def test_parse_keeps_the_callers_headers_as_inbound() -> None:
    headers = {"x-api-key": "sk-caller", "anthropic-version": "2023-06-01"}
    call = CODEC.parse({"messages": USER, "stream": True}, ROUTE, {}, headers)
    assert (call.agent_id, call.body, call.stream, call.inbound) == (
        "claude-native",
        {"messages": USER, "stream": True},
        True,
        headers,
    )
    assert dict(CODEC.parse({"messages": USER}, ROUTE, {}, {}).inbound) == {}
    with pytest.raises(ClientError) as caught:
        CODEC.parse({"messages": []}, ROUTE, {}, headers)
    assert caught.value.failure.param == "messages"


def test_size_reads_messages_system_tools_and_max_tokens() -> None:
    system = [{"type": "text", "text": "Client system."}]
    body = {"messages": USER, "system": system, "tools": [WEATHER], "max_tokens": 300}
    assert CODEC.size(CODEC.parse(body, ROUTE, {}, {})) == RequestSize(
        conversation=USER, system=system, tools=([WEATHER],), output_cap=300
    )
    assert CODEC.size(CODEC.parse({"messages": USER, "system": "S"}, ROUTE, {}, {})) == RequestSize(
        conversation=USER, system="S", tools=(None,), output_cap=None
    )


def test_routes_list_messages_models_and_a_catch_all() -> None:
    prefix = "/v1/anthropic/{agent}"
    module = "astra_sidecar.sidecar.protocols.anthropic.ingress"
    count, models, probe = (
        ANTHROPIC.handler(module, name) for name in ("count_tokens", "list_models", "probe")
    )
    assert ANTHROPIC.routes() == CODEC.routes()
    assert CODEC.routes() == [
        Route("POST", prefix + "/v1/messages"),
        Route("POST", prefix + "/v1/messages/count_tokens", count),
        Route("GET", prefix + "/v1/models", models),
        Route("*", prefix + "/v1", probe),
        Route("POST", prefix + "/messages"),
        Route("POST", prefix + "/messages/count_tokens", count),
        Route("GET", prefix + "/models", models),
        Route("*", prefix, probe),
        Route("*", r"/v1/anthropic/{tail:[\s\S]*}", ingress.unknown_route),
    ]
    # The handlers the route table defers to, by name.
    assert [resolve(module, name) for name in ("count_tokens", "list_models", "probe")] == [
        ingress.count_tokens,
        ingress.list_models,
        ingress.probe,
    ]


def test_stream_content_type() -> None:
    assert CODEC.stream_content_type == "text/event-stream"
