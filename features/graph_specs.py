"""Registry entries of the graph features (features.graph, features.graph_bipartite)."""

from __future__ import annotations

from features.registry import FeatureSpec

#: entity -> name -> (description, unit, family)
GRAPH_FEATURES: dict[str, dict[str, tuple[str, str, str]]] = {
    "agency": {
        "in_volume": ("handovers received from other agencies", "count", "transfers"),
        "out_volume": ("handovers sent to other agencies", "count", "transfers"),
        "in_partners": ("agencies it receives dossiers from", "count", "transfers"),
        "out_partners": ("agencies it sends dossiers to", "count", "transfers"),
        "degree_centrality": ("share of agencies it exchanges dossiers with", "share", "graph"),
        "betweenness": ("how often it lies between other agencies on transfers", "score", "graph"),
        "pagerank": ("weight of the agency in the transfer network (PageRank)", "score", "graph"),
        "reciprocity_share": (
            "share of its handovers sent to agencies that send dossiers back",
            "share",
            "ping-pong",
        ),
        "cycles3": ("circular three-agency transfer routes through it", "count", "ping-pong"),
        "pingpong_dossiers": ("dossiers bounced back and forth through it", "count", "ping-pong"),
        "pingpong_share": (
            "share of its transferred dossiers that bounced back and forth",
            "share",
            "ping-pong",
        ),
        "offroute_share": (
            "share of its handovers outside the approved routes",
            "share",
            "conformance",
        ),
    },
    "agency_pair": {
        "volume": ("handovers from the first agency to the second", "count", "transfers"),
        "dossiers": ("dossiers handed over on this route", "count", "transfers"),
        "hold_p50": ("median time the receiver held them", "working days", "transfers"),
        "hold_p90": (
            "90th percentile of the time the receiver held them",
            "working days",
            "transfers",
        ),
        "holding_anomaly_ratio": (
            "receiver's median holding time for this sender over that for its other senders",
            "ratio",
            "integrity",
        ),
        "holding_anomaly_z": (
            "robust z-score of the receiver's holding time for this sender",
            "z-score",
            "integrity",
        ),
        "reciprocal_volume": ("handovers in the opposite direction", "count", "ping-pong"),
        "pingpong": ("handovers on this route that bounced a dossier back", "count", "ping-pong"),
        "off_route": (
            "the route between these kinds of unit is not approved",
            "flag",
            "conformance",
        ),
        "off_route_share": (
            "share of handovers outside their procedure's approved route",
            "share",
            "conformance",
        ),
    },
    "dossier": {
        "graph_transfers": ("handovers between agencies", "count", "transfers"),
        "graph_offroute_transfers": (
            "handovers outside the procedure's approved route",
            "count",
            "conformance",
        ),
        "graph_pingpong": ("handovers that bounced the dossier back again", "count", "ping-pong"),
        "graph_max_holding_anomaly": (
            "largest holding-time anomaly of the routes the dossier took",
            "ratio",
            "integrity",
        ),
        "graph_max_holding_z": (
            "largest holding-time z-score of the routes the dossier took",
            "z-score",
            "integrity",
        ),
    },
}
_BIPARTITE: dict[str, tuple[str, str, str]] = {
    "partners": ("distinct {other}s in the officer-intermediary network", "count", "rings"),
    "repeat_pairs": ("{other}s shared on three or more dossiers", "count", "rings"),
    "top_pair_dossiers": ("dossiers shared with the most frequent {other}", "count", "rings"),
    "top_pair_share": ("share of dossiers shared with the most frequent {other}", "share", "rings"),
    "community_id": ("officer-intermediary community (Louvain)", "category", "rings"),
    "community_size": ("officers and intermediaries in its community", "count", "rings"),
    "community_density": (
        "share of possible officer-intermediary links present in its community",
        "share",
        "rings",
    ),
    "community_dossiers": ("dossiers within its community", "count", "rings"),
}
for _entity, _other in (("officer", "intermediary"), ("submitter", "officer")):
    GRAPH_FEATURES[_entity] = {
        name: (text.format(other=_other), unit, family)
        for name, (text, unit, family) in _BIPARTITE.items()
    }

ROLES = {"officer": "main officer", "agency": "first agency", "submitter": "intermediary"}


def _specs() -> list[FeatureSpec]:
    specs = []
    for entity, table in GRAPH_FEATURES.items():
        for name, (text, unit, family) in table.items():
            specs.append(FeatureSpec(name, text, unit, family, entity))
            if entity in ROLES:
                specs.append(
                    FeatureSpec(
                        f"{entity}__{name}", f"{ROLES[entity]}: {text}", unit, family, "dossier"
                    )
                )
    return specs


SPECS: tuple[FeatureSpec, ...] = tuple(_specs())
