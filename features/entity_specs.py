"""Registry entries of the entity features (:mod:`features.entities`), one per window.

A windowed feature is declared once here as a base name; its columns are
``{name}_{window}`` (``late_share_90d``; ``late_share_all`` for all history) for every
window in :data:`WINDOWS`. Entity features joined back to dossiers are declared for the
dossier too, prefixed with the entity (``officer__late_share_90d``), so explanations of a
dossier can name them.
"""

from __future__ import annotations

from features.registry import FeatureSpec

#: The window of all history up to ``as_of`` (columns ``*_all``).
ALL_HISTORY = "ALL"
#: Windows the entity features may use: calendar days ending at ``as_of``, or all history
#: up to it (for sparse logs whose last year starts no dossier).
WINDOWS: tuple[str, ...] = ("7D", "30D", "90D", "365D", ALL_HISTORY)
#: Windows the feature engine computes.
DEFAULT_WINDOWS: tuple[str, ...] = ("30D", "90D", ALL_HISTORY)

#: How a dossier refers to each entity it is joined with, for the descriptions.
ROLES: dict[str, str] = {
    "officer": "main officer",
    "agency": "first agency",
    "procedure": "procedure",
    "submitter": "intermediary",
}

_DOSSIER_ENTITIES = ("officer", "agency", "procedure", "submitter")
_ALL = (*_DOSSIER_ENTITIES, "agency_pair")

#: name -> (description, unit, family, entities)
BASE: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "dossiers": ("dossiers started", "count", "volume", _DOSSIER_ENTITIES),
    "finished": ("dossiers finished by now", "count", "volume", _DOSSIER_ENTITIES),
    "speed_ratio_p50": (
        "median duration relative to the procedure's median duration",
        "ratio",
        "speed",
        _DOSSIER_ENTITIES,
    ),
    "speed_ratio_p90": (
        "90th percentile of duration relative to the procedure's median duration",
        "ratio",
        "speed",
        _DOSSIER_ENTITIES,
    ),
    "late_share": ("share of finished dossiers over their statutory time", "share", "delay", _ALL),
    "supplement_rate": (
        "requests for supplementary documents per dossier",
        "ratio",
        "waste",
        _DOSSIER_ENTITIES,
    ),
    "offhours_share": (
        "share of events outside office hours",
        "share",
        "integrity",
        _DOSSIER_ENTITIES,
    ),
    "approval_offhours_share": (
        "share of approvals at night, at weekends or on holidays",
        "share",
        "integrity",
        _DOSSIER_ENTITIES,
    ),
    "rating_mean": ("mean satisfaction rating", "rating", "satisfaction", _DOSSIER_ENTITIES),
    "rating_5star_share": (
        "share of ratings that are five stars",
        "share",
        "satisfaction",
        _DOSSIER_ENTITIES,
    ),
    "rating_count": ("rated dossiers", "count", "satisfaction", _DOSSIER_ENTITIES),
    "rating_std": (
        "spread (standard deviation) of ratings",
        "rating",
        "satisfaction",
        _DOSSIER_ENTITIES,
    ),
    # officer
    "touches": ("events recorded by the officer", "count", "volume", ("officer",)),
    "touched_dossiers": ("dossiers the officer acted on", "count", "volume", ("officer",)),
    "handling_ratio_p50": (
        "median handling time relative to the procedure's median handling time",
        "ratio",
        "speed",
        ("officer",),
    ),
    "top_submitter_share": (
        "share of the officer's dossiers from their most frequent intermediary",
        "share",
        "concentration",
        ("officer",),
    ),
    "submitted_share": (
        "share of the officer's dossiers submitted through an intermediary",
        "share",
        "concentration",
        ("officer",),
    ),
    "late_share_direct": (
        "late share of the officer's dossiers filed without an intermediary",
        "share",
        "integrity",
        ("officer",),
    ),
    "late_share_submitted": (
        "late share of the officer's dossiers filed through an intermediary",
        "share",
        "integrity",
        ("officer",),
    ),
    "favour_ratio_min": (
        "lowest ratio of the officer's handling time for one intermediary to that for others",
        "ratio",
        "integrity",
        ("officer",),
    ),
    # submitter
    "applicants": ("distinct applicants represented", "count", "concentration", ("submitter",)),
    "procedures": ("distinct procedures filed", "count", "concentration", ("submitter",)),
    "officers": ("distinct main officers handling them", "count", "concentration", ("submitter",)),
    "applicants_per_dossier": (
        "distinct applicants per dossier filed",
        "ratio",
        "concentration",
        ("submitter",),
    ),
    "top_officer_share": (
        "share of the intermediary's dossiers handled by one officer",
        "share",
        "concentration",
        ("submitter",),
    ),
    # procedure
    "duration_p50": (
        "median duration of finished dossiers",
        "working days",
        "speed",
        ("procedure",),
    ),
    # agency
    "transfers_in": ("dossiers handed over to it", "count", "transfers", ("agency",)),
    "transfers_out": ("dossiers it handed over", "count", "transfers", ("agency",)),
    "holding_days_p50": (
        "median time it held dossiers handed to it",
        "working days",
        "transfers",
        ("agency", "agency_pair"),
    ),
    # agency pair
    "transfers": (
        "handovers from the first agency to the second",
        "count",
        "transfers",
        ("agency_pair",),
    ),
    "transfer_dossiers": (
        "dossiers handed over on this route",
        "count",
        "transfers",
        ("agency_pair",),
    ),
    "holding_days_p90": (
        "90th percentile of the time the receiver held them",
        "working days",
        "transfers",
        ("agency_pair",),
    ),
}

#: Columns of :func:`features.entities.officer_submitter_pairs` (registered for the officer).
PAIR_SPECS: tuple[FeatureSpec, ...] = tuple(
    FeatureSpec(name, description, unit, "integrity", "officer")
    for name, description, unit in (
        ("pair_dossiers", "dossiers of this intermediary the officer acted on", "count"),
        ("other_dossiers", "other dossiers the officer acted on", "count"),
        ("pair_share", "share of the officer's dossiers from this intermediary", "share"),
        (
            "pair_handling_ratio_p50",
            "officer's median handling ratio for this intermediary",
            "ratio",
        ),
        ("other_handling_ratio_p50", "officer's median handling ratio for others", "ratio"),
        ("favour_ratio", "handling ratio for this intermediary over that for others", "ratio"),
        ("favour_z", "robust z-score of the handling ratio for this intermediary", "z-score"),
        ("pair_late_share", "late share of this intermediary's dossiers", "share"),
        ("other_late_share", "late share of the officer's other dossiers", "share"),
    )
)


def _span(window: str) -> str:
    """How a description names the window: ``"last 90 days"``, ``"all history"``."""
    if window.upper() == ALL_HISTORY:
        return "all history"
    return f"last {window[:-1] if window.upper().endswith('D') else window} days"


def windowed_specs() -> list[FeatureSpec]:
    """The windowed entity features, and their dossier-level joins."""
    specs = []
    for window in WINDOWS:
        suffix = window.lower()
        for name, (description, unit, family, entities) in BASE.items():
            text = f"{description}, {_span(window)}"
            for entity in entities:
                specs.append(FeatureSpec(f"{name}_{suffix}", text, unit, family, entity))
                if entity in ROLES:
                    specs.append(
                        FeatureSpec(
                            f"{entity}__{name}_{suffix}",
                            f"{ROLES[entity]}: {text}",
                            unit,
                            family,
                            "dossier",
                        )
                    )
    return specs


SPECS: tuple[FeatureSpec, ...] = (*windowed_specs(), *PAIR_SPECS)
