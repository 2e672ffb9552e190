"""Compiler diagnostics as values: `file:line:col: severity CODE message`.

Every diagnostic carries a stable code from `CODES`; codes never change meaning once released.
Lines and columns are 1-based. Position convention (see docs/config.md): a diagnostic about a
key (unknown, duplicate, missing something inside it) points at the key; one about a value points
at the value; an empty value points at its key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class CodeInfo:
    severity: Severity
    title: str


_E, _W = Severity.ERROR, Severity.WARNING

#: Every diagnostic code with its severity and a one-line title (docs, SARIF rules).
CODES: MappingProxyType[str, CodeInfo] = MappingProxyType(
    {
        "AST001": CodeInfo(_E, "file cannot be read"),
        "AST002": CodeInfo(_E, "file too large"),
        "AST003": CodeInfo(_E, "binary file or not UTF-8 text"),
        "AST004": CodeInfo(_E, "empty document"),
        "AST005": CodeInfo(_E, "YAML syntax error"),
        "AST006": CodeInfo(_E, "tab character used for indentation"),
        "AST007": CodeInfo(_E, "YAML structure refused (alias bomb, recursive alias, deep nesting)"),
        "AST008": CodeInfo(_E, "duplicate YAML key"),
        "AST009": CodeInfo(_E, "unsupported YAML construct"),
        "AST010": CodeInfo(_E, "top level is not a mapping"),
        "AST101": CodeInfo(_E, "unknown key"),
        "AST102": CodeInfo(_E, "missing required key"),
        "AST103": CodeInfo(_E, "wrong type"),
        "AST104": CodeInfo(_E, "invalid value"),
        "AST105": CodeInfo(_E, "number out of range"),
        "AST201": CodeInfo(_E, "agent id conflict"),
        "AST202": CodeInfo(_E, "unknown provider"),
        "AST203": CodeInfo(_E, "provider needs an endpoint"),
        "AST204": CodeInfo(_E, "fallback is the same as the primary"),
        "AST205": CodeInfo(_E, "fallback chain lists a target twice"),
        "AST206": CodeInfo(_E, "fallback cycle between agents"),
        "AST207": CodeInfo(_E, "fallback names an unknown agent"),
        "AST208": CodeInfo(_W, "fallback lacks a capability the agent needs"),
        "AST209": CodeInfo(_E, "maxOutputTokens exceeds maxContextTokens (the model's, or a fallback's)"),
        "AST210": CodeInfo(_E, "temperature above the provider's maximum"),
        "AST211": CodeInfo(_E, "tool both allowed and denied"),
        "AST212": CodeInfo(_E, "systemPrompt template syntax error"),
        "AST213": CodeInfo(_E, "systemPrompt uses an undefined variable"),
        "AST214": CodeInfo(_W, "worst-case latency exceeds the request deadline"),
        "AST215": CodeInfo(_W, "credential environment variable not set (--check-env)"),
        "AST216": CodeInfo(_W, "conflicting definitions of one cluster"),
        "AST217": CodeInfo(_E, "option does not apply to this provider"),
        "AST230": CodeInfo(_W, "reasoning default on a model without a reasoning control"),
        "AST231": CodeInfo(_E, "reasoning budgetTokens below the model's smallest budget"),
        "AST232": CodeInfo(_E, "reasoning budgetTokens not below maxOutputTokens"),
        "AST233": CodeInfo(_W, "reasoning budgetTokens above the model's largest budget"),
        "AST234": CodeInfo(_E, "reasoning effort and budgetTokens disagree"),
        "AST235": CodeInfo(_E, "temperature with reasoning on Claude"),
        "AST236": CodeInfo(_W, "reasoning off on a model that cannot turn thinking off"),
        "AST237": CodeInfo(_W, "maxOutputTokens leaves no room for the model's smallest thinking budget"),
        "AST240": CodeInfo(_W, "maxDecompressedBytes below maxAnswerBytes"),
        "AST241": CodeInfo(_W, "maxSseLineBytes above maxAnswerBytes"),
        "AST242": CodeInfo(_W, "maxEventFrameBytes above what the event-stream decoder accepts"),
        "AST243": CodeInfo(_W, "clientStallMs not below requestTimeoutMs"),
        "AST250": CodeInfo(_E, "embedding agent on a provider without an embeddings API"),
        "AST251": CodeInfo(_E, "fallback agent of another kind (chat or embedding)"),
        "AST252": CodeInfo(_E, "chat-only setting on an embedding agent"),
        "AST253": CodeInfo(_E, "model is not an embedding model the sidecar can call"),
        "AST260": CodeInfo(_W, "quotas kept in Redis without onStateUnavailable"),
        "AST261": CodeInfo(_E, "quotas store redis without settings.state.redis"),
        "AST262": CodeInfo(_E, "settings.state.redis but redis-py is not installed"),
        "AST263": CodeInfo(_E, "settings.state.redis needs exactly one of url or urlEnv"),
        "AST264": CodeInfo(_E, "password in the Redis URL"),
        "AST265": CodeInfo(_W, "perKey limits that can never apply"),
        "AST266": CodeInfo(_E, "quotas that set no limit"),
        "AST267": CodeInfo(_E, "pool member of weight 0"),
        "AST268": CodeInfo(_E, "pool lists one deployment twice"),
        "AST269": CodeInfo(_W, "pool of one member"),
        "AST270": CodeInfo(_W, "pool weights that strategy least-in-flight ignores"),
        "AST271": CodeInfo(_E, "two pool members with one id"),
        "AST272": CodeInfo(_E, "circuitBreaker.shared without settings.state.redis"),
        "AST301": CodeInfo(_E, "routing table does not match its schema"),
        "AST302": CodeInfo(_E, "routing table hash mismatch"),
    }
)

#: Codes that mean the input could not be read at all (CLI exit status 2).
IO_CODES = frozenset({"AST001"})


@dataclass(frozen=True, slots=True, order=True)
class Diagnostic:
    """One finding. Ordering is by file, position, code, then message."""

    file: str
    line: int
    col: int
    code: str
    message: str

    @property
    def severity(self) -> Severity:
        return CODES[self.code].severity

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        message = self.message.translate(_ONE_LINE)
        return f"{self.file}:{self.line}:{self.col}: {self.severity.value} {self.code} {message}"


#: Control characters and line separators in a message (which may quote the input, e.g. a key
#: `"\r"`) become escapes, so a diagnostic in text form is always exactly one line.
_ONE_LINE = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, 0x85)} | {0x2028: "\\u2028", 0x2029: "\\u2029"}


def suggestion(word: str, candidates: Iterable[str]) -> str:
    """ "; did you mean 'x'?" for the closest candidate, or ""."""
    import difflib  # only when a suggestion is made: the sidecar imports this module too

    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else ""


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)


def format_text(diagnostics: Sequence[Diagnostic]) -> str:
    return "".join(f"{d}\n" for d in diagnostics)


def _as_dict(d: Diagnostic) -> dict[str, Any]:
    return {
        "file": d.file,
        "line": d.line,
        "column": d.col,
        "severity": d.severity.value,
        "code": d.code,
        "message": d.message,
    }


def format_json(diagnostics: Sequence[Diagnostic]) -> str:
    return json.dumps([_as_dict(d) for d in diagnostics], indent=2, ensure_ascii=False) + "\n"


def _gh_escape(text: str, *, prop: bool) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def format_github(diagnostics: Sequence[Diagnostic]) -> str:
    """GitHub Actions workflow commands, one annotation per diagnostic."""
    lines = []
    for d in diagnostics:
        props = f"file={_gh_escape(d.file, prop=True)},line={d.line},col={d.col},title={d.code}"
        lines.append(f"::{d.severity.value} {props}::{_gh_escape(d.message, prop=False)}\n")
    return "".join(lines)


def format_sarif(diagnostics: Sequence[Diagnostic]) -> str:
    """SARIF 2.1.0 with one rule per code used."""
    used = sorted({d.code for d in diagnostics})
    rules = [
        {
            "id": code,
            "shortDescription": {"text": CODES[code].title},
            "defaultConfiguration": {"level": CODES[code].severity.value},
        }
        for code in used
    ]
    results = [
        {
            "ruleId": d.code,
            "ruleIndex": used.index(d.code),
            "level": d.severity.value,
            "message": {"text": d.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": d.file.replace("\\", "/")},
                        "region": {"startLine": d.line, "startColumn": d.col},
                    }
                }
            ],
        }
        for d in diagnostics
    ]
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "astra", "rules": rules}}, "results": results}],
    }
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"


FORMATTERS = MappingProxyType(
    {"text": format_text, "json": format_json, "github": format_github, "sarif": format_sarif}
)
