"""JSON access log lines: who asked, which provider served, how it went. Never keys or contents."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import orjson

access_log = logging.getLogger("astra.access")


@dataclass(slots=True)
class AccessRecord:
    request_id: str
    route: str
    agent: str | None = None
    provider: str | None = None
    status: int = 0
    attempts: int = 0
    stream: bool = False
    latency_ms: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error_code: str | None = None

    def emit(self) -> None:
        # makeRecord + handle: the same path as .info() minus the caller lookup (a stack walk).
        if access_log.isEnabledFor(logging.INFO):
            access_log.handle(
                access_log.makeRecord(access_log.name, logging.INFO, "", 0, self.line(), (), None)
            )

    def line(self) -> str:
        record = {"ts": round(time.time(), 3), **{k: getattr(self, k) for k in self.__slots__}}
        return orjson.dumps({k: v for k, v in record.items() if v is not None}).decode()


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
        for key in ("cluster", "provider", "agent"):
            value = getattr(record, key, None)
            if value is not None:
                body[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            body["error"] = record.exc_info[0].__name__
            body["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(body).decode()


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger("astra")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
