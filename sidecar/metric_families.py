"""Hot-path metric families: plain Python numbers, exported by a prometheus-client collector.

prometheus_client's own Counter/Histogram take a lock and run several checks on every update;
the sidecar updates ~10 series per request on one event-loop thread, so it keeps the numbers
itself and lets prometheus_client do what it is for — the exposition — through a custom
collector (`Families`, registered on the app's registry). The API mirrors prometheus_client's
(`labels(...)`, `inc`, `dec`, `set`, `observe`), so call sites read the same.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector


class CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class GaugeChild(CounterChild):
    __slots__ = ()

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = float(value)


class HistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class _Family:
    kind = ""

    def __init__(self, name: str, doc: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.doc = doc
        self.labelnames = tuple(labelnames)
        self.children: dict[tuple[str, ...], object] = {}

    def clear(self) -> None:
        self.children.clear()


class Counter(_Family):
    kind = "counter"

    def labels(self, *values: str) -> CounterChild:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = CounterChild()
        return child  # type: ignore[return-value]

    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def metric(self) -> Metric:
        family = CounterMetricFamily(self.name, self.doc, labels=self.labelnames)
        for values, child in self.children.items():
            family.add_metric(list(values), child.value)  # type: ignore[attr-defined]
        return family


class Gauge(_Family):
    kind = "gauge"

    def labels(self, *values: str) -> GaugeChild:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = GaugeChild()
        return child  # type: ignore[return-value]

    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self.labels().dec(amount)

    def set(self, value: float) -> None:
        self.labels().set(value)

    def metric(self) -> Metric:
        family = GaugeMetricFamily(self.name, self.doc, labels=self.labelnames)
        for values, child in self.children.items():
            family.add_metric(list(values), child.value)  # type: ignore[attr-defined]
        return family


class Histogram(_Family):
    kind = "histogram"

    def __init__(self, name: str, doc: str, labelnames: Sequence[str], buckets: Sequence[float]) -> None:
        super().__init__(name, doc, labelnames)
        self.bounds = tuple(float(b) for b in buckets)

    def labels(self, *values: str) -> HistogramChild:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = HistogramChild(self.bounds)
        return child  # type: ignore[return-value]

    def metric(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)
        for values, child in self.children.items():
            assert isinstance(child, HistogramChild)
            running, buckets = 0, []
            for bound, count in zip((*self.bounds, math.inf), child.counts, strict=True):
                running += count
                buckets.append((_le(bound), float(running)))
            family.add_metric(list(values), buckets, child.sum)
        return family


def _le(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(bound)


class Families(Collector):
    """Exports every family it holds at scrape time."""

    def __init__(self) -> None:
        self.families: list[Counter | Gauge | Histogram] = []

    def add(self, family: Counter | Gauge | Histogram) -> None:
        self.families.append(family)

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            yield family.metric()
