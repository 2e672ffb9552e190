"""Log lines: one JSON object each; an unexpected error says what and where, never a traceback."""

from __future__ import annotations

import logging
import sys

import orjson

from astra_sidecar.sidecar.accesslog import JsonLineFormatter


def _raise_with_a_secret() -> None:
    raise KeyError("sk-secret-from-a-request")


def test_an_unexpected_error_is_one_line_naming_its_type_and_where_it_was_raised() -> None:
    try:
        _raise_with_a_secret()
    except KeyError:
        record = logging.LogRecord(
            "astra.sidecar", logging.ERROR, __file__, 1, "unexpected error", None, sys.exc_info()
        )
    line = JsonLineFormatter().format(record)
    body = orjson.loads(line)
    assert body["msg"] == "unexpected error"
    assert body["error"] == "KeyError"
    line_no = _raise_with_a_secret.__code__.co_firstlineno + 1
    assert body["where"] == f"test_log_format.py:{line_no} in _raise_with_a_secret"
    assert "\n" not in line
    assert "Traceback" not in line
    assert "sk-secret" not in line
