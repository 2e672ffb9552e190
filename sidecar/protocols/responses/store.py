"""The response store behind `previous_response_id`, `GET` and `DELETE /v1/responses/{id}`.

What is kept per response: the Response object (for `GET`) and the conversation it ended (the
input items it was asked with, a previous response's conversation first, then its output items),
which a later request naming it as `previous_response_id` continues.

- **In process** (`MemoryStore`, the default): least recently used entries go first once there
  are more than `settings.responses.store.maxEntries` of them or they take more than `maxBytes`
  (serialised); each expires `ttlMs` after it was stored, on the sidecar's clock. Each process
  (each `astra serve` worker) has its own.
- **Redis** (`RedisStore`), when `settings.state.redis` is configured: one key per response,
  `{keyPrefix}:responses:{id}`, expiring after `ttlMs` (Redis's own memory policy bounds the
  rest), shared by every replica.

`maxEntries: 0` turns the store off: nothing is kept, and `previous_response_id` is refused.

A write that is lost (Redis down or too slow, or no Redis URL) does not fail the request, whose
answer is already out: it is logged and counted in `astra_background_failures_total{task="response_store"}`.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from astra_sidecar.compiler.table import ResponsesStore, RoutingTable
from astra_sidecar.compiler.table.fleet import RedisState
from astra_sidecar.sidecar.clock import Clock
from astra_sidecar.sidecar.metric_families import CounterChild

log = logging.getLogger("astra.sidecar")
Json = dict[str, Any]


class StoreUnavailableError(Exception):
    """The store could not be read (Redis down or too slow)."""


class ResponseStore(Protocol):
    async def get(self, response_id: str) -> Json | None: ...

    async def put(self, response_id: str, entry: Json) -> None: ...

    async def delete(self, response_id: str) -> bool: ...


class MemoryStore:
    def __init__(self, settings: ResponsesStore, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0

    @property
    def size(self) -> tuple[int, int]:
        """(entries, bytes) held now, expired ones included until they are next looked at."""
        return len(self._entries), self._bytes

    async def get(self, response_id: str) -> Json | None:
        found = self._entries.get(response_id)
        if found is None:
            return None
        expires, raw = found
        if self._clock.now() >= expires:
            self._drop(response_id)
            return None
        self._entries.move_to_end(response_id)
        entry: Json = orjson.loads(raw)
        return entry

    async def put(self, response_id: str, entry: Json) -> None:
        raw = orjson.dumps(entry)
        if len(raw) > self._settings.max_bytes:
            return
        self._drop(response_id)
        self._entries[response_id] = (self._clock.now() + self._settings.ttl_ms / 1000.0, raw)
        self._bytes += len(raw)
        while len(self._entries) > self._settings.max_entries or self._bytes > self._settings.max_bytes:
            self._drop(next(iter(self._entries)))

    async def delete(self, response_id: str) -> bool:
        found = await self.get(response_id)
        self._drop(response_id)
        return found is not None

    def _drop(self, response_id: str) -> None:
        found = self._entries.pop(response_id, None)
        if found is not None:
            self._bytes -= len(found[1])


class RedisStore:
    def __init__(
        self, url: str, state: RedisState, settings: ResponsesStore, lost: CounterChild | None = None
    ) -> None:
        self._lost = lost or CounterChild()
        try:
            from redis.asyncio import Redis
        except ImportError as exc:
            raise RuntimeError("settings.state.redis needs redis-py: install astra-sidecar[redis]") from exc
        # Conversations are larger than quota counters: at least a second per store operation.
        timeout_s = max(state.timeout_ms, 1000) / 1000.0
        self._client: Any = Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._prefix = f"{state.key_prefix}:responses:"
        self._ttl_ms = settings.ttl_ms

    async def get(self, response_id: str) -> Json | None:
        try:
            raw = await self._client.get(self._prefix + response_id)
        except Exception as exc:  # redis-py raises its own errors and OSError subclasses
            raise StoreUnavailableError(type(exc).__name__) from exc
        if raw is None:
            return None
        entry: Json = orjson.loads(raw)
        return entry

    async def put(self, response_id: str, entry: Json) -> None:
        try:
            await self._client.set(self._prefix + response_id, orjson.dumps(entry), px=self._ttl_ms)
        except Exception as exc:
            self._lost.inc()
            log.warning("response store: %s not kept (Redis: %s)", response_id, type(exc).__name__)

    async def delete(self, response_id: str) -> bool:
        try:
            return bool(await self._client.delete(self._prefix + response_id))
        except Exception as exc:
            raise StoreUnavailableError(type(exc).__name__) from exc

    async def close(self) -> None:
        await self._client.aclose()


class UnreachableStore:
    """Stands for a Redis store that cannot be built (its URL variable is not set): reads are
    503s, writes are lost (and counted); the reason was logged once, when the store was built."""

    def __init__(self, lost: CounterChild | None = None) -> None:
        self._lost = lost or CounterChild()

    async def get(self, response_id: str) -> Json | None:
        raise StoreUnavailableError("no Redis URL")

    async def put(self, response_id: str, entry: Json) -> None:
        self._lost.inc()

    async def delete(self, response_id: str) -> bool:
        raise StoreUnavailableError("no Redis URL")


def build_store(
    table: RoutingTable, env: Mapping[str, str], clock: Clock, lost: CounterChild | None = None
) -> ResponseStore | None:
    """The store a table asks for, or None when it is turned off; `lost` counts writes it lost."""
    settings = table.settings.responses_store
    if settings.max_entries == 0:
        return None
    state = table.settings.redis
    if state is None:
        return MemoryStore(settings, clock)
    url = state.url or (env.get(state.url_env) if state.url_env else None)
    if not url:
        log.warning(
            "response store: %s is not set (it holds the Redis URL); nothing is stored", state.url_env
        )
        return UnreachableStore(lost)
    return RedisStore(url, state, settings, lost)
