"""JSON access log lines: who asked, which provider served, how it went. Never keys or contents.

Lines go to an `AccessSink`. The default sends them through the `astra.access` logger (so tests
and embedding apps see them like any log record); `astra serve` uses `BufferedSink`, which writes
them to stderr in batches — at most every `flush_s` or 64 KiB, and at shutdown — because the
logging machinery cost ~15-25 µs per request on the proxy's hot path (see README, Performance).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO, Protocol, TypeVar

import orjson
from aiohttp import web

access_log = logging.getLogger("astra.access")
_R = TypeVar("_R", bound=web.StreamResponse)

#: Where a route's own handler (model lists, probes, count_tokens, 404s) leaves the error code of
#: its answer, for the access line the app writes for it (`sidecar/app.py`).
ERROR_CODE_KEY = web.ResponseKey("astra.error_code", str)


class AccessSink(Protocol):
    def write(self, line: bytes) -> None: ...

    def flush(self) -> None: ...


class LoggingSink:
    """Access lines as records of the `astra.access` logger, at INFO."""

    def write(self, line: bytes) -> None:
        # makeRecord + handle: the same path as .info() minus the caller lookup (a stack walk).
        if access_log.isEnabledFor(logging.INFO):
            access_log.handle(
                access_log.makeRecord(access_log.name, logging.INFO, "", 0, line.decode(), (), None)
            )

    def flush(self) -> None:
        return None


class BufferedSink:
    """Access lines batched to a binary stream (stderr by default), flushed on a short timer."""

    def __init__(
        self, stream: BinaryIO | None = None, flush_s: float = 0.5, max_bytes: int = 64 * 1024
    ) -> None:
        self._stream = stream or sys.stderr.buffer
        self._flush_s = flush_s
        self._max_bytes = max_bytes
        self._lines: list[bytes] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None

    def write(self, line: bytes) -> None:
        self._lines.append(line + b"\n")
        self._size += len(line) + 1
        if self._size >= self._max_bytes:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._flush_s, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lines:
            self._stream.write(b"".join(self._lines))
            self._stream.flush()
            self._lines, self._size = [], 0


#: The error code of an access line whose failure named none, by status.
_STATUS_CODES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 408: "request_timeout", 413: "request_too_large", 429: "rate_limited"}  # fmt: skip


def with_error_code(response: _R, code: str | None) -> _R:
    """`response`, marked with the error code its access line names."""
    if code is not None:
        response[ERROR_CODE_KEY] = code
    return response


@dataclass(slots=True)
class AccessRecord:
    request_id: str
    route: str
    method: str | None = None
    path: str | None = None  # never the query string (`?key=` may carry a key)
    agent: str | None = None
    provider: str | None = None
    status: int = 0
    attempts: int = 0
    stream: bool = False
    latency_ms: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error_code: str | None = None

    def emit(self, sink: AccessSink) -> None:
        sink.write(self.line())

    def line(self) -> bytes:
        error_code = self.error_code
        if error_code is None and self.status >= 400:  # e.g. a body refused by validation
            error_code = _STATUS_CODES.get(self.status, f"http_{self.status}")
        record = {
            "ts": round(time.time(), 3), "request_id": self.request_id, "route": self.route,
            "method": self.method, "path": self.path, "agent": self.agent, "provider": self.provider,
            "status": self.status, "attempts": self.attempts, "stream": self.stream,
            "latency_ms": self.latency_ms, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "error_code": error_code,
        }  # fmt: skip
        return orjson.dumps({k: v for k, v in record.items() if v is not None})


class JsonLineFormatter(logging.Formatter):
    """Formats every log record as one JSON object per line; access lines are already JSON."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == access_log.name:
            return record.getMessage()
        body = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("cluster", "provider", "agent", "tool", "request_id"):
            value = getattr(record, key, None)
            if value is not None:
                body[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            body["error"] = record.exc_info[0].__name__
            where = _raised_at(record.exc_info[2])
            if where:
                body["where"] = where
        return orjson.dumps(body).decode()


def _raised_at(tb: TracebackType | None) -> str | None:
    """Where an unexpected error was raised, as `file:line in function` of its innermost frame:
    enough to find the bug, without a traceback (whose frames and message may quote a request
    or a secret) in the log."""
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return f"{os.path.basename(code.co_filename)}:{tb.tb_lineno} in {code.co_name}"


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger("astra")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
