"""The fake Anthropic API (`tests.fakes.anthropic_upstream`) speaks what the official `anthropic`
SDK understands, and refuses what the real API refuses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import pytest
from aiohttp.test_utils import TestServer

from tests.fakes.anthropic_upstream import (
    ErrorReply,
    FakeAnthropic,
    Reply,
    StreamCut,
    StreamError,
    text_message,
    validate_request,
)
from tests.sidecar.protocols.anthropic.helpers import (
    PARALLEL,
)

# --- the fake itself speaks what the official anthropic SDK understands ---------------------------


@pytest.fixture
async def fake_server() -> AsyncIterator[tuple[FakeAnthropic, str]]:
    fake = FakeAnthropic()
    server = TestServer(fake.app())
    await server.start_server()
    try:
        yield fake, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_fake_answers_the_official_anthropic_sdk(fake_server: tuple[FakeAnthropic, str]) -> None:
    fake, url = fake_server
    client = anthropic.AsyncAnthropic(base_url=url, api_key="sk-ant-test", max_retries=0)
    fake.push(
        Reply(PARALLEL), Reply(PARALLEL, write_size=7), ErrorReply(529, "overloaded_error", "Overloaded")
    )
    plain = await client.messages.create(
        model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "q"}]
    )
    assert plain.model_dump(exclude_none=True) == anthropic.types.Message.model_validate(PARALLEL).model_dump(
        exclude_none=True
    )
    async with client.messages.stream(
        model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "q"}]
    ) as stream:
        final = await stream.get_final_message()
    assert [b.model_dump(exclude_none=True) for b in final.content] == [
        b.model_dump(exclude_none=True) for b in plain.content
    ]
    assert final.usage.cache_read_input_tokens == 300 and final.usage.output_tokens == 40
    with pytest.raises(anthropic.APIStatusError) as info:
        await client.messages.create(
            model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "q"}]
        )
    assert info.value.status_code == 529
    assert info.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
        "request_id": "req_fake",
    }
    assert len(fake.requests) == 3
    await client.close()


async def test_fake_rejects_what_the_api_rejects_and_injects_stream_faults(
    fake_server: tuple[FakeAnthropic, str],
) -> None:
    fake, url = fake_server
    client = anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.BadRequestError):
        await client.messages.create(
            model="m",
            max_tokens=8,
            messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
        )
    fake.push(StreamError(text_message("abcdefgh"), after_events=4))
    with pytest.raises(anthropic.APIStatusError) as info:
        async with client.messages.stream(
            model="m", max_tokens=8, messages=[{"role": "user", "content": "a"}]
        ) as stream:
            await stream.get_final_message()
    assert info.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    fake.push(StreamCut(text_message("abcdefgh"), after_events=4))
    with pytest.raises(Exception, match="incomplete chunked read"):
        async with client.messages.stream(
            model="m", max_tokens=8, messages=[{"role": "user", "content": "a"}]
        ) as stream:
            await stream.get_final_message()
    await client.close()


def test_translated_requests_pass_the_fakes_api_rules() -> None:
    bad = {"model": "m", "max_tokens": 8, "messages": [{"role": "assistant", "content": "x"}]}
    assert validate_request({"x-api-key": "k", "anthropic-version": "2023-06-01"}, bad) is not None
    dangling = {
        "model": "m",
        "max_tokens": 8,
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": "no result"},
        ],
    }
    assert validate_request({"x-api-key": "k", "anthropic-version": "2023-06-01"}, dangling) is not None
    assert validate_request({"anthropic-version": "2023-06-01"}, {}) == (
        401,
        "authentication_error",
        "x-api-key header is required",
    )
