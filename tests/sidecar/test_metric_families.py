"""The hot-path metric families expose exactly what prometheus_client's own types would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from astra_sidecar.sidecar.metric_families import Counter, Families, Gauge, Histogram


def _registry(*families: Counter | Gauge | Histogram) -> CollectorRegistry:
    collected = Families()
    for family in families:
        collected.add(family)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collected)
    return registry


def test_counter_gauge_and_histogram_exposition() -> None:
    requests = Counter("demo_requests", "Requests", ["agent"])
    in_flight = Gauge("demo_in_flight", "In flight")
    latency = Histogram("demo_seconds", "Latency", ["agent"], (0.1, 1.0))
    requests.labels("a").inc()
    requests.labels("a").inc(2)
    in_flight.inc()
    in_flight.inc()
    in_flight.dec()
    for value in (0.05, 0.1, 0.5, 7.0):
        latency.labels("a").observe(value)
    text = generate_latest(_registry(requests, in_flight, latency)).decode()
    assert 'demo_requests_total{agent="a"} 3.0' in text
    assert "# TYPE demo_requests_total counter" in text
    assert "demo_in_flight 1.0" in text
    assert 'demo_seconds_bucket{agent="a",le="0.1"} 2.0' in text
    assert 'demo_seconds_bucket{agent="a",le="1.0"} 3.0' in text
    assert 'demo_seconds_bucket{agent="a",le="+Inf"} 4.0' in text
    assert 'demo_seconds_count{agent="a"} 4.0' in text
    assert 'demo_seconds_sum{agent="a"} 7.65' in text


def test_cleared_gauge_forgets_old_series() -> None:
    info = Gauge("demo_info", "Info", ["hash"])
    info.labels("old").set(1)
    info.clear()
    info.labels("new").set(1)
    registry = _registry(info)
    assert registry.get_sample_value("demo_info", {"hash": "old"}) is None
    assert registry.get_sample_value("demo_info", {"hash": "new"}) == 1.0
