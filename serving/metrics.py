"""The service's metrics in the Prometheus text format (version 0.0.4), written by hand:
requests by route and status, their latency, ingested events, alerts by kind.

One :class:`Metrics` per app (``app.state.metrics``), so tests and replicas do not share
counters; each process reports its own and Prometheus sums over replicas.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable

#: latency histogram buckets (seconds).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**pairs: str) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in pairs.items()) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Metrics:
    """Counters and a latency histogram, safe to update from the server's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str, str]] = Counter()  # method, route, status
        self.latency_counts: Counter[tuple[str, str, float]] = Counter()  # method, route, le
        self.latency_sum: defaultdict[tuple[str, str], float] = defaultdict(float)
        self.latency_count: Counter[tuple[str, str]] = Counter()
        self.events: Counter[str] = Counter()  # new / duplicate

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, str(status))] += 1
            for le in BUCKETS:
                if seconds <= le:
                    self.latency_counts[(method, route, le)] += 1
            self.latency_sum[(method, route)] += seconds
            self.latency_count[(method, route)] += 1

    def ingested(self, new: int, duplicate: int) -> None:
        with self._lock:
            self.events["new"] += new
            self.events["duplicate"] += duplicate

    def render(self, alerts: Iterable[tuple[str, str, int]] = ()) -> str:
        """The text exposition; ``alerts`` is ``(kind, status, count)`` read at scrape time."""
        with self._lock:
            lines = [
                "# HELP giamsat_http_requests_total HTTP requests by route and status.",
                "# TYPE giamsat_http_requests_total counter",
            ]
            for (method, route, status), n in sorted(self.requests.items()):
                labels = _labels(method=method, route=route, status=status)
                lines.append(f"giamsat_http_requests_total{labels} {n}")
            lines += [
                "# HELP giamsat_http_request_duration_seconds HTTP request latency.",
                "# TYPE giamsat_http_request_duration_seconds histogram",
            ]
            for method, route in sorted(self.latency_count):
                for le in (*BUCKETS, math.inf):
                    n = (
                        self.latency_count[(method, route)]
                        if math.isinf(le)
                        else self.latency_counts[(method, route, le)]
                    )
                    labels = _labels(method=method, route=route, le=_number(le))
                    lines.append(f"giamsat_http_request_duration_seconds_bucket{labels} {n}")
                labels = _labels(method=method, route=route)
                total = self.latency_sum[(method, route)]
                lines.append(f"giamsat_http_request_duration_seconds_sum{labels} {total!r}")
                count = self.latency_count[(method, route)]
                lines.append(f"giamsat_http_request_duration_seconds_count{labels} {count}")
            lines += [
                "# HELP giamsat_events_ingested_total Events received by POST /v1/events.",
                "# TYPE giamsat_events_ingested_total counter",
            ]
            for outcome in ("new", "duplicate"):
                labels = _labels(outcome=outcome)
                lines.append(f"giamsat_events_ingested_total{labels} {self.events[outcome]}")
        lines += [
            "# HELP giamsat_alerts Stored alerts by kind and status.",
            "# TYPE giamsat_alerts gauge",
        ]
        for kind, status, n in alerts:
            lines.append(f"giamsat_alerts{_labels(kind=kind, status=status)} {n}")
        return "\n".join(lines) + "\n"
