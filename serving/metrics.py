"""The service's metrics in the Prometheus text format (version 0.0.4), written by hand:
requests by route and status, their latency, ingested events, alerts by kind, and the
model served (which version, its reloads and their failures, time since it was loaded).

One :class:`Metrics` per app (``app.state.metrics``), so tests and replicas do not share
counters; each process reports its own and Prometheus sums over replicas.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

#: latency histogram buckets (seconds).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: where a model reload can fail (serving.models): asking the registry, loading the
#: bundle, or a consumer refusing it.
RELOAD_STAGES = ("resolve", "load", "callback")


@dataclass(frozen=True)
class ModelGauge:
    """The model served, read at scrape time (``version`` None: none is loaded)."""

    name: str
    alias: str
    version: str | None
    seconds_since_load: float | None


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
        self.model_reloads = 0
        self.rescoring: Counter[str] = Counter()  # scored / failed dossiers
        self.model_reload_failures: Counter[str] = Counter()  # by stage

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

    def rescored(self, scored: int, failed: int) -> None:
        with self._lock:
            self.rescoring["scored"] += scored
            self.rescoring["failed"] += failed

    def model_reloaded(self) -> None:
        with self._lock:
            self.model_reloads += 1

    def model_reload_failed(self, stage: str) -> None:
        with self._lock:
            self.model_reload_failures[stage] += 1

    def render(
        self, alerts: Iterable[tuple[str, str, int]] = (), model: ModelGauge | None = None
    ) -> str:
        """The text exposition; ``alerts`` is ``(kind, status, count)`` and ``model`` the
        model served, both read at scrape time."""
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
                "# HELP giamsat_dossiers_rescored_total Dossiers re-scored after ingestion "
                "(failed: left out of a batch, logged).",
                "# TYPE giamsat_dossiers_rescored_total counter",
            ]
            for outcome in ("scored", "failed"):
                labels = _labels(outcome=outcome)
                lines.append(f"giamsat_dossiers_rescored_total{labels} {self.rescoring[outcome]}")
            lines += self._model_lines(model)
        lines += [
            "# HELP giamsat_alerts Stored alerts by kind and status.",
            "# TYPE giamsat_alerts gauge",
        ]
        for kind, status, n in alerts:
            lines.append(f"giamsat_alerts{_labels(kind=kind, status=status)} {n}")
        return "\n".join(lines) + "\n"

    def _model_lines(self, model: ModelGauge | None) -> list[str]:
        lines = [
            "# HELP giamsat_model_reloads_total Model bundles loaded and swapped in "
            "(the start-up load included).",
            "# TYPE giamsat_model_reloads_total counter",
            f"giamsat_model_reloads_total {self.model_reloads}",
            "# HELP giamsat_model_reload_failures_total Failed model reloads by stage "
            "(the model served before stays).",
            "# TYPE giamsat_model_reload_failures_total counter",
        ]
        for stage in RELOAD_STAGES:
            n = self.model_reload_failures[stage]
            lines.append(f"giamsat_model_reload_failures_total{_labels(stage=stage)} {n}")
        if model is None:
            return lines
        loaded = model.version is not None
        lines += [
            "# HELP giamsat_model_loaded Whether a model is loaded for the alias.",
            "# TYPE giamsat_model_loaded gauge",
            f"giamsat_model_loaded{_labels(name=model.name, alias=model.alias)} {int(loaded)}",
        ]
        if model.version is None or model.seconds_since_load is None:
            return lines
        info = _labels(name=model.name, alias=model.alias, version=model.version)
        age = _labels(name=model.name, alias=model.alias)
        return lines + [
            "# HELP giamsat_model_info The model version served.",
            "# TYPE giamsat_model_info gauge",
            f"giamsat_model_info{info} 1",
            "# HELP giamsat_model_seconds_since_load Seconds since the served model was loaded.",
            "# TYPE giamsat_model_seconds_since_load gauge",
            f"giamsat_model_seconds_since_load{age} {model.seconds_since_load!r}",
        ]
