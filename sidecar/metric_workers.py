"""`astra serve --workers N`: one scrape shows the totals of every worker.

prometheus-client's multiprocess mode needs its own value classes (an mmap write per update); the
sidecar keeps its numbers in plain Python (`metric_families`), so it does the equivalent itself:
each worker writes a snapshot of its families to a per-run directory the parent made (atomically,
every `FLUSH_INTERVAL_S` and before answering a scrape), and the worker that answers a scrape
merges every snapshot in that directory:

- counters and histograms are summed over the workers (a snapshot only grows, so the totals never
  go back: no false resets; another worker's part is at most one flush interval old);
- `astra_in_flight_requests` is summed too (requests being served by the whole server);
- the families in `PER_WORKER` — breakers and the table being served, which each worker has of its
  own — keep one series per worker, with a `worker` label (0 … N-1).

With one worker nothing of this runs and no `worker` label appears.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from astra_sidecar.sidecar.metric_families import Counter, Families, Gauge, Histogram, HistogramChild

#: Families each worker keeps for itself; exported with a `worker` label.
PER_WORKER = frozenset({"astra_breaker_state", "astra_breaker_transitions", "astra_table_info"})
FLUSH_INTERVAL_S = 1.0

Snapshot = list[dict[str, Any]]


def snapshot(families: Sequence[Counter | Gauge | Histogram]) -> Snapshot:
    out: Snapshot = []
    for family in families:
        children: list[list[Any]] = []
        for values, child in family.children.items():
            if isinstance(child, HistogramChild):
                children.append([list(values), list(child.counts), child.sum])
            else:
                children.append([list(values), child.value])  # type: ignore[attr-defined]
        entry: dict[str, Any] = {"name": family.name, "kind": family.kind, "doc": family.doc}
        entry |= {"labels": list(family.labelnames), "children": children}
        if isinstance(family, Histogram):
            entry["bounds"] = list(family.bounds)
        out.append(entry)
    return out


class WorkerMetrics:
    """One worker's side: where its snapshot goes, and the merged exposition of all workers."""

    def __init__(self, families: Families, directory: str, worker: int) -> None:
        self._families = families
        self._dir = Path(directory)
        self.worker = worker
        self._path = self._dir / f"worker-{worker}.json"
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_Merged(self._dir))

    def flush(self) -> None:
        """Write this worker's snapshot (atomically: a reader sees the old one or the new one)."""
        tmp = self._path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(orjson.dumps(snapshot(self._families.families)))
        os.replace(tmp, self._path)

    def render(self) -> bytes:
        self.flush()
        return generate_latest(self._registry)


class _Merged(Collector):
    def __init__(self, directory: Path) -> None:
        self._dir = directory

    def _snapshots(self) -> Iterator[tuple[str, Snapshot]]:
        for path in sorted(self._dir.glob("worker-*.json")):
            try:
                data = orjson.loads(path.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                continue  # a worker that is just starting; its numbers come with its next flush
            yield path.stem.removeprefix("worker-"), data

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, dict[str, Any]] = {}
        for worker, families in self._snapshots():
            for family in families:
                _merge(merged, worker, family)
        for family in merged.values():
            yield _exported(family)


def _merge(merged: dict[str, dict[str, Any]], worker: str, family: dict[str, Any]) -> None:
    per_worker = family["name"] in PER_WORKER
    target = merged.setdefault(
        family["name"],
        {**family, "labels": [*family["labels"], "worker"] if per_worker else family["labels"], "series": {}},
    )
    series: dict[tuple[str, ...], Any] = target["series"]
    for child in family["children"]:
        key = (*child[0], worker) if per_worker else tuple(child[0])
        if family["kind"] == "histogram":
            counts, total = series.get(key, ([0] * len(child[1]), 0.0))
            series[key] = ([a + b for a, b in zip(counts, child[1], strict=True)], total + child[2])
        else:
            series[key] = series.get(key, 0.0) + child[1]


def _exported(family: dict[str, Any]) -> Metric:
    name, doc, labels = family["name"], family["doc"], family["labels"]
    if family["kind"] == "histogram":
        hist = HistogramMetricFamily(name, doc, labels=labels)
        bounds = [*family["bounds"], math.inf]
        for values, (counts, total) in family["series"].items():
            running, buckets = 0, []
            for bound, count in zip(bounds, counts, strict=True):
                running += count
                buckets.append(("+Inf" if bound == math.inf else repr(bound), float(running)))
            hist.add_metric(list(values), buckets, total)
        return hist
    kind = CounterMetricFamily if family["kind"] == "counter" else GaugeMetricFamily
    metric = kind(name, doc, labels=labels)
    for values, value in family["series"].items():
        metric.add_metric(list(values), value)
    return metric
