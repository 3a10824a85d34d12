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
    hops: Counter
    hop_latency: Histogram
    duplicate_hops: Counter
    cas_conflicts: Counter
    hop_timeouts: Counter
    handoffs: Counter

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
            hops=Counter(
                "ussd_hops",
                "Hops answered, by channel and outcome (ok, duplicate, expired, timeout...).",
                ["channel", "outcome"],
                registry=registry,
            ),
            hop_latency=Histogram(
                "ussd_hop_duration_seconds",
                "Time to answer one hop, by channel.",
                ["channel"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            duplicate_hops=Counter(
                "ussd_duplicate_hops",
                "Hops answered from the stored reply (gateway retries), by channel.",
                ["channel"],
                registry=registry,
            ),
            cas_conflicts=Counter(
                "ussd_session_cas_conflicts",
                "Session saves that lost a compare-and-set race, by channel.",
                ["channel"],
                registry=registry,
            ),
            hop_timeouts=Counter(
                "ussd_hop_timeouts",
                "Hops that ran out of their deadline, by channel.",
                ["channel"],
                registry=registry,
            ),
            handoffs=Counter(
                "ussd_handoffs",
                "Sessions handed to an operator, by reason.",
                ["reason"],
                registry=registry,
            ),
        )
