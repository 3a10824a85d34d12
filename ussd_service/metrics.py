"""Prometheus metrics, one registry per application (tests build many apps)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

# Hops must answer in tens of milliseconds; gateways give up after seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0)


@dataclass(frozen=True)
class Metrics:
    """The service's metric families, registered in ``registry``."""

    registry: CollectorRegistry
    requests: Counter
    request_latency: Histogram

    @classmethod
    def create(cls) -> Metrics:
        """A fresh registry holding every metric family of the service."""
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            requests=Counter(
                "ussd_http_requests",
                "HTTP requests answered, by route, method and status code.",
                ["route", "method", "status"],
                registry=registry,
            ),
            request_latency=Histogram(
                "ussd_http_request_duration_seconds",
                "Time to answer an HTTP request, by route.",
                ["route"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
        )
