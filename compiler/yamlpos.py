"""YAML loading that remembers where every key and value came from.

PyYAML (libyaml when available) parses and composes; this module turns the node tree into plain
JSON-like data plus position tables keyed by path (`("agents", 0, "model")`). It adds what
PyYAML does not do: duplicate keys are reported (PyYAML keeps the last silently), alias bombs and
recursive aliases are refused before anything is expanded, nesting depth is bounded before
libyaml's recursive composer can overflow the C stack, and tabs, binary, huge and empty files get
their own clear diagnostics.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from astra_sidecar.compiler.diagnostics import Diagnostic

Path = tuple[str | int, ...]

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_EXPANDED_NODES = 500_000

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_TAG = "tag:yaml.org,2002:"
_STR, _TIMESTAMP, _MERGE, _MAP_TAG, _SEQ_TAG = (
    _TAG + name for name in ("str", "timestamp", "merge", "map", "seq")
)
#: Scalars become JSON values; timestamps stay the text they were written as.
_SCALAR_TAGS = frozenset(_TAG + name for name in ("str", "timestamp", "null", "bool", "int", "float"))


@dataclass(frozen=True, slots=True, order=True)
class Pos:
    line: int
    col: int


ORIGIN = Pos(1, 1)


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """Loaded data plus where each path's key and value start in the source (1-based)."""

    name: str
    data: Any
    lines: tuple[str, ...]
    values: Mapping[Path, Pos]
    keys: Mapping[Path, Pos]
    styles: Mapping[Path, str]

    def value_pos(self, path: Path) -> Pos:
        """Where the value at `path` starts (or its nearest known ancestor)."""
        while path not in self.values and path:
            path = path[:-1]
        return self.values.get(path, ORIGIN)

    def key_pos(self, path: Path) -> Pos:
        """Where the key of a mapping entry starts; a list item's or the root's value position."""
        return self.keys.get(path) or self.value_pos(path)

    def text_pos(self, path: Path, line: int, col: int | None) -> Pos:
        """Where (line, col) of the string at `path` is in the file (col None: the line's start).

        Exact for literal blocks (`|`) and for the first line of other scalars; elsewhere in
        folded or multi-line quoted scalars, the scalar's start.
        """
        start = self.value_pos(path)
        style = self.styles.get(path)
        if style == "|":
            first = next((t for t in self.lines[start.line :] if t.strip()), "")
            return Pos(start.line + line, len(first) - len(first.lstrip(" ")) + (col or 1))
        if line == 1 and style != ">":
            return Pos(start.line, start.col + (1 if style in ("'", '"') else 0) + (col or 1) - 1)
        return start

    def diag(self, pos: Pos, code: str, message: str) -> Diagnostic:
        return Diagnostic(self.name, pos.line, pos.col, code, message)


@dataclass(frozen=True, slots=True)
class LoadResult:
    document: YamlDocument | None
    diagnostics: tuple[Diagnostic, ...]


class _Refused(Exception):
    """The document cannot be turned into data; carries one diagnostic."""

    def __init__(self, pos: Pos, code: str, message: str) -> None:
        super().__init__(message)
        self.pos, self.code, self.message = pos, code, message


def dotted(path: Path) -> str:
    """`agents[0].model.temperature` for ("agents", 0, "model", "temperature"); "the top level" for ()."""
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
    return text.lstrip(".") or "the top level"


def _mark_pos(mark: Any) -> Pos:
    return Pos(mark.line + 1, mark.column + 1)


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


def _offset_pos(text: str, offset: int) -> Pos:
    line_start = text.rfind("\n", 0, offset) + 1
    return Pos(text.count("\n", 0, offset) + 1, offset - line_start + 1)


# --- reading ------------------------------------------------------------------------------------


def read_source(path: str) -> tuple[bytes | None, tuple[Diagnostic, ...]]:
    """The file's bytes, or an AST001/AST002 diagnostic. Never reads more than the size limit."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return None, (Diagnostic(path, 1, 1, "AST001", f"cannot read file: {reason}"),)
    if len(raw) > MAX_FILE_BYTES:
        message = f"file is larger than {MAX_FILE_BYTES} bytes; refusing to load it"
        return None, (Diagnostic(path, 1, 1, "AST002", message),)
    return raw, ()


def decode_text(raw: bytes) -> str:
    """UTF-8 text (BOM allowed); raises _Refused for NUL bytes or invalid UTF-8."""
    nul = raw.find(b"\x00")
    if nul >= 0:
        head = raw[:nul].decode("utf-8", "replace")
        raise _Refused(
            _offset_pos(head, len(head)), "AST003", "binary file (contains NUL bytes); expected YAML text"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        head = raw[: exc.start].decode("utf-8", "replace")
        message = f"not UTF-8 text: invalid byte 0x{raw[exc.start]:02x}"
        raise _Refused(_offset_pos(head, len(head)), "AST003", message) from exc


# --- parsing ------------------------------------------------------------------------------------


def _syntax_refusal(exc: yaml.MarkedYAMLError, lines: list[str]) -> _Refused:
    mark = exc.problem_mark or exc.context_mark
    pos = _mark_pos(mark) if mark is not None else ORIGIN
    line = lines[pos.line - 1] if 0 < pos.line <= len(lines) else ""
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    if "\t" in indent:
        return _Refused(
            Pos(pos.line, indent.index("\t") + 1),
            "AST006",
            "tab character in indentation; YAML indents with spaces only",
        )
    message = str(exc.problem or "invalid YAML")
    if exc.context and exc.context_mark is not None and _mark_pos(exc.context_mark) != pos:
        ctx = _mark_pos(exc.context_mark)
        message += f" ({exc.context} at line {ctx.line}, column {ctx.col})"
    return _Refused(pos, "AST005", message)


def _walk_depth(text: str) -> bool:
    """Refuse nesting deeper than MAX_DEPTH from the event stream; whether aliases occur at all."""
    depth, aliases = 0, False
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _Refused(
                    _mark_pos(event.start_mark),
                    "AST007",
                    f"nesting deeper than {MAX_DEPTH} levels; refusing to load",
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases = True
    return aliases


def _check_depth(text: str) -> bool:
    """Refuse deep nesting before anything is composed; returns whether aliases are used.

    The scanner holds events back while a simple key is possible (up to 1024 characters of a
    line), and libyaml 0.2.6 refuses nesting past its own limit (1000) meanwhile: `a: [[[[...`
    fails at column 1003 before one `[` arrives. So on a syntax error the text before its mark is
    walked again; at its end the held-back events come out, and nesting too deep is refused where
    it starts. If that prefix fails on its own, the original error stands.
    """
    try:
        return _walk_depth(text)
    except yaml.MarkedYAMLError as exc:
        end = exc.problem_mark.index if exc.problem_mark is not None else 0
        if 0 < end < len(text):
            with contextlib.suppress(yaml.YAMLError):
                _walk_depth(text[:end])
        raise


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key
            yield value
    elif isinstance(node, yaml.SequenceNode):
        yield from node.value


def _check_expansion(root: yaml.Node) -> None:
    """Refuse recursive aliases and documents whose aliases expand past MAX_EXPANDED_NODES.

    Aliases share nodes, so the composed graph stays small while its expansion can be
    exponential (the "billion laughs"). Sizes are counted on the graph, never by expanding it.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        nid = id(node)
        if leaving:
            active.discard(nid)
            sizes[nid] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[nid] > MAX_EXPANDED_NODES:
                raise _Refused(
                    _mark_pos(node.start_mark),
                    "AST007",
                    f"YAML aliases expand to more than {MAX_EXPANDED_NODES} nodes "
                    "(an alias bomb?); refusing to load",
                )
        elif nid in active:
            raise _Refused(
                _mark_pos(node.start_mark),
                "AST007",
                "recursive YAML alias (a node contains itself); refusing to load",
            )
        elif nid not in sizes:
            active.add(nid)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))


def _compose(text: str, lines: list[str]) -> yaml.Node | None:
    try:
        aliases = _check_depth(text)
        root: yaml.Node | None = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_refusal(exc, lines) from exc
    except yaml.reader.ReaderError as exc:
        message = f"unacceptable character #x{exc.character:04x} (control characters are not allowed)"
        raise _Refused(_offset_pos(text, exc.position), "AST003", message) from exc
    except yaml.YAMLError as exc:
        raise _Refused(ORIGIN, "AST005", f"invalid YAML: {exc}") from exc
    if root is not None and aliases:
        _check_expansion(root)
    return root


# --- building data with positions ---------------------------------------------------------------


@dataclass(slots=True)
class _Builder:
    name: str
    values: dict[Path, Pos] = field(default_factory=dict)
    keys: dict[Path, Pos] = field(default_factory=dict)
    styles: dict[Path, str] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    constructor: SafeConstructor = field(default_factory=SafeConstructor)

    def report(self, pos: Pos, code: str, message: str) -> None:
        self.diagnostics.append(Diagnostic(self.name, pos.line, pos.col, code, message))

    def build(self, node: yaml.Node, path: Path, key_pos: Pos | None = None) -> Any:
        pos = _mark_pos(node.start_mark)
        if len(path) > MAX_DEPTH:
            raise _Refused(pos, "AST007", f"aliases nest deeper than {MAX_DEPTH} levels; refusing to load")
        if key_pos and isinstance(node, yaml.ScalarNode) and node.value == "" and not node.style:
            pos = key_pos  # an empty value is best shown at its key
        self.values[path] = pos
        if isinstance(node, yaml.MappingNode):
            self._require_tag(node, _MAP_TAG)
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            self._require_tag(node, _SEQ_TAG)
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _require_tag(self, node: yaml.Node, tag: str) -> None:
        if node.tag != tag:
            raise _Refused(
                _mark_pos(node.start_mark), "AST009", f"unsupported YAML tag {_short_tag(node.tag)}"
            )

    def _scalar(self, node: yaml.Node, path: Path) -> Any:
        if node.tag not in _SCALAR_TAGS:
            raise _Refused(
                _mark_pos(node.start_mark), "AST009", f"unsupported YAML tag {_short_tag(node.tag)}"
            )
        if node.tag in (_STR, _TIMESTAMP):
            style = getattr(node, "style", None)
            if style:
                self.styles[path] = style
            return node.value
        try:
            value = self.constructor.construct_object(node)
        except (ValueError, LookupError, yaml.YAMLError) as exc:
            raise _Refused(
                _mark_pos(node.start_mark), "AST009", f"cannot read {node.value!r} as {_short_tag(node.tag)}"
            ) from exc
        if isinstance(value, float) and not math.isfinite(value):
            raise _Refused(
                _mark_pos(node.start_mark),
                "AST009",
                f"{node.value} is not a finite number; JSON cannot represent it",
            )
        return value

    def _entries(self, node: yaml.MappingNode) -> Iterator[tuple[yaml.Node, yaml.Node, bool]]:
        """(key, value, merged) pairs: explicit entries first, then `<<` merges in order."""
        merges: list[yaml.Node] = []
        for key, value in node.value:
            if key.tag == _MERGE:
                merges.extend(value.value if isinstance(value, yaml.SequenceNode) else [value])
            else:
                yield key, value, False
        for source in merges:
            if not isinstance(source, yaml.MappingNode):
                raise _Refused(_mark_pos(source.start_mark), "AST009", "a << merge needs a mapping")
            for key, value, _ in self._entries(source):
                yield key, value, True

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node, merged in self._entries(node):
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Refused(
                    _mark_pos(key_node.start_mark),
                    "AST009",
                    "complex mapping keys are not supported; keys must be plain text",
                )
            key, key_pos = key_node.value, _mark_pos(key_node.start_mark)
            if key in result:
                if not merged:
                    first = self.keys[(*path, key)]
                    self.report(
                        key_pos,
                        "AST008",
                        f"duplicate key '{key}' (first defined at line {first.line}); the first one is used",
                    )
                continue
            self.keys[(*path, key)] = key_pos
            result[key] = self.build(value_node, (*path, key), key_pos)
        return result


def _refusal(name: str, refused: _Refused) -> LoadResult:
    return LoadResult(
        None, (Diagnostic(name, refused.pos.line, refused.pos.col, refused.code, refused.message),)
    )


def _root_mapping(text: str, lines: list[str]) -> yaml.MappingNode:
    root = _compose(text, lines)
    if root is None or (isinstance(root, yaml.ScalarNode) and root.value == "" and not root.style):
        raise _Refused(ORIGIN, "AST004", "the file has no YAML content; expected a mapping with 'agents'")
    if not isinstance(root, yaml.MappingNode):
        kind = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
        raise _Refused(
            _mark_pos(root.start_mark), "AST010", f"the top level is {kind}; expected a mapping with 'agents'"
        )
    return root


def load_text(text: str, name: str) -> LoadResult:
    """Parse YAML text into a positioned document, reporting every problem as a diagnostic."""
    lines = text.splitlines()
    builder = _Builder(name)
    try:
        data = builder.build(_root_mapping(text, lines), ())
    except _Refused as refused:
        return _refusal(name, refused)
    except RecursionError:  # only reachable through long chains of << merges
        return _refusal(name, _Refused(ORIGIN, "AST007", "YAML merges nest too deeply; refusing to load"))
    document = YamlDocument(name, data, tuple(lines), builder.values, builder.keys, builder.styles)
    return LoadResult(document, tuple(builder.diagnostics))


def load_bytes(raw: bytes, name: str) -> LoadResult:
    try:
        text = decode_text(raw)
    except _Refused as refused:
        return _refusal(name, refused)
    return load_text(text, name)
