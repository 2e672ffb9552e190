"""`astra diff OLD NEW`: what would change in routing if NEW replaced OLD.

OLD and NEW are each an astra.yml (compiled now), a compiled routing table, or `REV:PATH`, a file
at a git revision (read with `git show REV:PATH`, so PATH is relative to the repository root, or
to the current directory when written `./PATH`). The comparison runs on the compiled tables, where
every default is resolved, so a change of a default or of an agent a fallback points to shows up
in every agent it affects. Reading the two sides is `astra_sidecar.compiler.diff_sides`; this module compares
and reports them.

For each agent: added, removed, or the fields that changed, old → new. Field names follow the
table's JSON: `provider`, `model`, `endpoint` and `fallbacks` name the route (the primary
endpoint and the fallback chain, each entry `provider:modelId`); `primary.*` and `fallback[X].*`
are the other properties of those endpoints (breaker, credentials, headers…); the agent's own
policy keeps its key (`temperature`, `tools.allow`, `retry.maxRetries`, `requestTimeoutMs`…).
Settings changes are listed apart. Text is for people (a pull-request summary), JSON for tools.

Exit status, like diff(1): 0 when the two tables route identically (they may still differ in
their source text, e.g. comments); 1 when anything routes differently; 2 on usage, I/O or compile
errors, with the diagnostics on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from astra_sidecar.compiler.table import Json

if TYPE_CHECKING:  # loading a side compiles astra.yml: imported when `astra diff` runs
    from astra_sidecar.compiler.diff_sides import Side

EXIT_SAME, EXIT_CHANGED, EXIT_TROUBLE = 0, 1, 2

Category = Literal["route", "limits", "policy", "other", "settings"]

_ROUTE_FIELDS = ("provider", "model", "endpoint", "fallbacks")
_LIMIT_FIELDS = ("maxContextTokens", "maxOutputTokens", "temperature")
_POLICY_ROOTS = (
    "tools",
    "systemPrompt",
    "promptVars",
    "promptCache",
    "retry",
    "timeouts",
    "requestTimeoutMs",
)
_ENDPOINT_KEYS = ("endpoint", "baseUrlEnv", "baseUrlRule", "region", "vertex", "pool")
_CATEGORY_ORDER: dict[Category, int] = {"route": 0, "limits": 1, "policy": 2, "other": 3, "settings": 4}


# --- the comparison -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    field: str
    category: Category
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class AgentChanges:
    agent: str
    changes: tuple[Change, ...]


@dataclass(frozen=True, slots=True)
class TableDiff:
    old: Side
    new: Side
    added: tuple[Json, ...]
    removed: tuple[Json, ...]
    changed: tuple[AgentChanges, ...]
    settings: tuple[Change, ...]

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.settings)


def _flatten(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """Dotted paths to leaves. Lists are leaves; an empty mapping has none (like a missing one)."""
    if isinstance(value, dict):
        for key in sorted(value):
            yield from _flatten(value[key], f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def _plan_labels(table: Json, plan: Sequence[str]) -> list[str]:
    """`provider:modelId` per plan entry; `@baseUrl` is added where that alone is ambiguous."""
    clusters = [table["clusters"][key] for key in plan]
    short = [f"{c['provider']}:{c['modelId']}" for c in clusters]
    return [s if short.count(s) == 1 else f"{s}@{c['baseUrl']}" for s, c in zip(short, clusters, strict=True)]


def _cluster_fields(cluster: Json, prefix: str) -> Iterator[tuple[str, Any]]:
    for key, value in _flatten(cluster, ""):
        if key in ("provider", "modelId"):
            continue
        name = "endpoint" if key == "baseUrl" else key
        yield f"{prefix}.{name}", value


def agent_view(table: Json, agent_id: str) -> dict[str, Any]:
    """The agent's route and policy as flat fields, its plan resolved into endpoint properties."""
    agent = table["agents"][agent_id]
    labels = _plan_labels(table, agent["plan"])
    primary = table["clusters"][agent["plan"][0]]
    view: dict[str, Any] = {
        "provider": primary["provider"],
        "model": primary["modelId"],
        "endpoint": primary["baseUrl"],
        "fallbacks": labels[1:],
    }
    view.update(_flatten({k: v for k, v in agent.items() if k not in ("plan", "pools")}, ""))
    view.update(_cluster_fields({k: v for k, v in primary.items() if k != "baseUrl"}, "primary"))
    for label, key in zip(labels[1:], agent["plan"][1:], strict=True):
        view.update(_cluster_fields(table["clusters"][key], f"fallback[{label}]"))
    owners = ["primary", *(f"fallback[{label}]" for label in labels[1:])]
    for owner, key in zip(owners, agent["plan"], strict=True):
        view.update(_pool_fields(table, agent.get("pools", {}).get(key), owner))
    return view


def _pool_fields(table: Json, pool: Json | None, owner: str) -> dict[str, Any]:
    """`<owner>.pool.strategy` and `<owner>.pool.members` (`id weight W at URL, key $VAR` each)."""
    if pool is None:
        return {}
    members = []
    for member in pool["members"]:
        cluster = table["clusters"][member["cluster"]]
        key = (cluster.get("credentials") or {}).get("env")
        where = f" at {cluster['baseUrl']}" + (f", key ${key}" if key else "")
        members.append(f"{member['id']} weight {member['weight']:g}{where}")
    return {f"{owner}.pool.strategy": pool["strategy"], f"{owner}.pool.members": members}


def _split_owner(field: str) -> tuple[str, str]:
    """(`primary` or `fallback[X]` or the agent's own top key, the rest); X may contain dots."""
    if field.startswith("fallback[") and "]." in field:
        end = field.index("].") + 1
        return field[:end], field[end + 1 :]
    root, _, rest = field.partition(".")
    return root, rest


def categorize(field: str) -> Category:
    """Which part of an agent a field belongs to: its route, limits, policy or anything else."""
    if field in _ROUTE_FIELDS:
        return "route"
    if field in _LIMIT_FIELDS:
        return "limits"
    owner, rest = _split_owner(field)
    if owner in _POLICY_ROOTS or rest.startswith("breaker."):
        return "policy"
    if (owner == "primary" or owner.startswith("fallback[")) and rest.split(".", 1)[0] in _ENDPOINT_KEYS:
        return "route"
    return "other"


def _sort_key(change: Change) -> tuple[int, int, int, str]:
    """Category, then the route fields in their order, the agent's own fields, primary, fallbacks."""
    rank = _ROUTE_FIELDS.index(change.field) if change.field in _ROUTE_FIELDS else len(_ROUTE_FIELDS)
    owner = _split_owner(change.field)[0]
    owner_rank = 2 if owner.startswith("fallback[") else 1 if owner == "primary" else 0
    return (_CATEGORY_ORDER[change.category], rank, owner_rank, change.field)


def compare_fields(old: dict[str, Any], new: dict[str, Any]) -> tuple[Change, ...]:
    """Every field whose value differs (a field missing on one side counts as None there)."""
    changes = [
        Change(name, categorize(name), old.get(name), new.get(name))
        for name in sorted(old.keys() | new.keys())
        if old.get(name) != new.get(name)
    ]
    return tuple(sorted(changes, key=_sort_key))


def agent_summary(table: Json, agent_id: str) -> Json:
    view = agent_view(table, agent_id)
    return {"agent": agent_id, **{name: view[name] for name in _ROUTE_FIELDS}}


def _settings_view(table: Json) -> dict[str, Any]:
    return dict(_flatten({"schemaVersion": table["schemaVersion"], **table["settings"]}, ""))


def _shared_fallbacks_only(old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Drop the properties of fallbacks that are in one chain only: `fallbacks` already says so."""
    shared = {f"fallback[{label}]" for label in old["fallbacks"]} & {
        f"fallback[{label}]" for label in new["fallbacks"]
    }

    def keep(view: dict[str, Any]) -> dict[str, Any]:
        return {
            k: v for k, v in view.items() if not k.startswith("fallback[") or _split_owner(k)[0] in shared
        }

    return keep(old), keep(new)


def diff_tables(old: Side, new: Side) -> TableDiff:
    """Compare two routing tables agent by agent, and their settings."""
    old_ids, new_ids = set(old.table["agents"]), set(new.table["agents"])
    changed = []
    for agent_id in sorted(old_ids & new_ids):
        views = _shared_fallbacks_only(agent_view(old.table, agent_id), agent_view(new.table, agent_id))
        changes = compare_fields(*views)
        if changes:
            changed.append(AgentChanges(agent_id, changes))
    settings = compare_fields(_settings_view(old.table), _settings_view(new.table))
    return TableDiff(
        old=old,
        new=new,
        added=tuple(agent_summary(new.table, a) for a in sorted(new_ids - old_ids)),
        removed=tuple(agent_summary(old.table, a) for a in sorted(old_ids - new_ids)),
        changed=tuple(changed),
        settings=tuple(Change(c.field, "settings", c.old, c.new) for c in settings),
    )


# --- output -------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value) if value else "(none)"
    if isinstance(value, dict):
        return "{}"
    return str(value)


def _lines_of(text: Any) -> str:
    if text is None:
        return "none"
    count = len(str(text).splitlines())
    return f"{count} line" if count == 1 else f"{count} lines"


def _show_change(change: Change) -> str:
    if change.field == "systemPrompt":
        return f"changed ({_lines_of(change.old)} → {_lines_of(change.new)})"
    text = f"{_show(change.old)} → {_show(change.new)}"
    reordered = (
        isinstance(change.old, list)
        and isinstance(change.new, list)
        and sorted(map(str, change.old)) == sorted(map(str, change.new))
    )
    return text + (" (reordered)" if reordered else "")


def _change_lines(changes: Iterable[Change]) -> list[str]:
    listed = list(changes)
    width = max(len(c.field) for c in listed)
    return [f"    {c.field:<{width}}  {_show_change(c)}" for c in listed]


def _summary_line(mark: str, summary: Json) -> str:
    endpoint = f" ({summary['endpoint']})" if summary["endpoint"] else ""
    fallbacks = f"; fallbacks: {_show(summary['fallbacks'])}" if summary["fallbacks"] else ""
    return f"{mark} {summary['agent']}: {summary['provider']} {summary['model']}{endpoint}{fallbacks}"


def _counts(diff: TableDiff) -> str:
    parts = [f"{len(diff.added)} added", f"{len(diff.removed)} removed", f"{len(diff.changed)} changed"]
    settings = ", settings changed" if diff.settings else ""
    return "agents: " + ", ".join(parts) + settings


def _no_changes(diff: TableDiff) -> str:
    if diff.old.table["hash"] == diff.new.table["hash"]:
        return "no route changes (identical tables)"
    return "no route changes (only the source text differs, e.g. comments or formatting)"


def format_text(diff: TableDiff) -> str:
    """The comparison for people: `+` added, `-` removed, `~` changed agents, old → new."""
    lines = [
        f"astra diff {diff.old.name} → {diff.new.name}",
        f"old table {diff.old.table['hash']}",
        f"new table {diff.new.table['hash']}",
    ]
    if not diff.has_changes:
        return "\n".join([*lines, _no_changes(diff)]) + "\n"
    lines += [_counts(diff), ""]
    lines += [_summary_line("+", s) for s in diff.added]
    lines += [_summary_line("-", s) for s in diff.removed]
    for agent in diff.changed:
        lines += [f"~ {agent.agent}", *_change_lines(agent.changes)]
    if diff.settings:
        lines += ["~ settings", *_change_lines(diff.settings)]
    return "\n".join(lines) + "\n"


def _change_json(change: Change) -> Json:
    return {"field": change.field, "category": change.category, "old": change.old, "new": change.new}


def to_json(diff: TableDiff) -> Json:
    """The comparison as a JSON document (see docs: `changed`, `agents`, `settings`)."""
    return {
        "old": {"source": diff.old.name, "hash": diff.old.table["hash"]},
        "new": {"source": diff.new.name, "hash": diff.new.table["hash"]},
        "changed": diff.has_changes,
        "agents": {
            "added": list(diff.added),
            "removed": list(diff.removed),
            "changed": [
                {"agent": a.agent, "changes": [_change_json(c) for c in a.changes]} for a in diff.changed
            ],
        },
        "settings": [_change_json(c) for c in diff.settings],
    }


def format_json(diff: TableDiff) -> str:
    return json.dumps(to_json(diff), indent=2, ensure_ascii=False) + "\n"


FORMATS = {"text": format_text, "json": format_json}


# --- command line -------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """`astra diff`: print the comparison; 0 same routes, 1 changes, 2 trouble."""
    from astra_sidecar.compiler.diff_sides import DiffInputError, load_side

    try:
        old, new = load_side(args.old), load_side(args.new)
    except DiffInputError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_TROUBLE
    diff = diff_tables(old, new)
    sys.stdout.write(FORMATS[args.format](diff))
    return EXIT_CHANGED if diff.has_changes else EXIT_SAME


def add_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `diff` on the `astra` command's sub-parsers."""
    parser = verbs.add_parser(
        "diff",
        help="show how routing changes between two configs or tables (exit 1 when it does)",
        description="OLD and NEW: an astra.yml, a routing table, or REV:PATH (a file at a git revision).",
    )
    parser.add_argument("old", metavar="OLD", help="astra.yml, routing table, or REV:PATH")
    parser.add_argument("new", metavar="NEW", help="astra.yml, routing table, or REV:PATH")
    parser.add_argument(
        "--format", choices=sorted(FORMATS), default="text", help="output format (default: text)"
    )
    parser.set_defaults(run=run)


def main(argv: list[str] | None = None) -> int:
    """`python -m astra_sidecar.compiler.diff OLD NEW`: the same verb without the rest of the `astra` command."""
    parser = argparse.ArgumentParser(prog="astra")
    add_parser(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args(["diff", *(sys.argv[1:] if argv is None else argv)])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_TROUBLE
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
