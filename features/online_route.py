"""Route conformance of one dossier against the catalogue, in plain Python (online
scoring): :func:`features.dossier_conformance.conformance_features` and
:func:`~features.dossier_conformance.route_position` for one dossier's events.

Each procedure's route is laid out once per catalogue as dictionaries (step of the k-th
occurrence of an activity, step of an (activity, unit type)), so matching an event is a
dictionary lookup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from features import schema as s
from features.catalogue import Catalogue, Procedure
from features.dossier_conformance import _OUTCOMES
from features.dossier_structure import BOOKKEEPING

if TYPE_CHECKING:
    from features.online import DossierTrace

__all__ = ["RouteColumns", "route_columns", "route_position"]

NAN = math.nan
_VOCAB = frozenset(s.ACTIVITIES)
_BOOKKEEPING = frozenset(BOOKKEEPING)
_NOT_EXTRA = frozenset(BOOKKEEPING | _OUTCOMES)


@dataclass(frozen=True)
class _Route:
    """One procedure's approved route as lookups."""

    by_occurrence: dict[tuple[str, int], int]  # (activity, k-th occurrence) -> step
    by_unit: dict[tuple[str, str], int]  # (activity, unit type) -> its first step
    mandatory: tuple[bool, ...]
    activities: frozenset[str]
    approved: frozenset[tuple[str, str]]  # (from unit type, to unit type)

    @classmethod
    def of(cls, procedure: Procedure) -> _Route:
        by_occurrence: dict[tuple[str, int], int] = {}
        by_unit: dict[tuple[str, str], int] = {}
        counts: dict[str, int] = {}
        for rank, step in enumerate(procedure.route):
            by_unit.setdefault((step.activity, step.unit_type), rank)
            by_occurrence[(step.activity, counts.get(step.activity, 0))] = rank
            counts[step.activity] = counts.get(step.activity, 0) + 1
        return cls(
            by_occurrence,
            by_unit,
            tuple(step.mandatory for step in procedure.route),
            frozenset(step.activity for step in procedure.route),
            frozenset(procedure.approved_transfers()),
        )


@dataclass(frozen=True)
class _Routes:
    """Every route of a catalogue, the unit types they use and the longest route."""

    routes: dict[str, _Route]
    procedures: dict[str, Procedure]
    units: frozenset[str]
    length: int
    unit_of: dict[str, str] = field(default_factory=dict)  # agency_id -> routed unit type


_CACHE: dict[tuple[int, int], tuple[Catalogue, pd.DataFrame | None, _Routes]] = {}


def _routes(catalogue: Catalogue, agencies: pd.DataFrame | None) -> _Routes:
    key = (id(catalogue), id(agencies))
    cached = _CACHE.get(key)
    if cached is not None and cached[0] is catalogue and cached[1] is agencies:
        return cached[2]
    procs = list(catalogue)
    units = frozenset(step.unit_type for p in procs for step in p.route)
    unit_of: dict[str, str] = {}
    if agencies is not None:
        first = agencies.drop_duplicates("agency_id")
        for agency, unit in zip(first["agency_id"], first["unit_type"], strict=True):
            if not pd.isna(agency) and not pd.isna(unit) and str(unit) in units:
                unit_of[str(agency)] = str(unit)
    routes = _Routes(
        {p.code: _Route.of(p) for p in procs},
        {p.code: p for p in procs},
        units,
        max(len(p.route) for p in procs),
        unit_of,
    )
    _CACHE[key] = (catalogue, agencies, routes)
    return routes


@dataclass(frozen=True)
class RouteColumns:
    """What the catalogue says of one dossier: its conformance columns (NaN when its
    procedure is not catalogued), statutory days, fee and whether it is full-online."""

    columns: dict[str, float]
    statutory: float
    fee: float
    full_online: bool


def _procedure(tr: DossierTrace) -> str | None:
    code = tr.dossier[s.PROCEDURE_CODE]
    return None if code is None else str(code)


def route_columns(
    tr: DossierTrace, catalogue: Catalogue | None, agencies: pd.DataFrame | None
) -> RouteColumns:
    """The conformance counts of :func:`features.dossier_conformance.conformance_features`
    (``wrong_unit_steps`` and ``off_route_transfers`` only with an agency directory)."""
    if catalogue is None:
        return RouteColumns({}, NAN, NAN, False)
    routes = _routes(catalogue, agencies)
    code = _procedure(tr)
    route = routes.routes.get(code) if code is not None else None
    names = ["missing_mandatory_steps", "extra_steps", "order_violations"]
    if agencies is not None:
        names += ["wrong_unit_steps", "off_route_transfers"]
    if route is None:
        return RouteColumns(dict.fromkeys(names, NAN), NAN, NAN, False)
    procedure = routes.procedures[str(code)]
    counts = _conformance(tr, route, routes, agencies is not None)
    return RouteColumns(
        {name: float(counts[name]) for name in names},
        float(procedure.statutory_days),
        float(procedure.fee),
        procedure.online_level == "full",
    )


def _conformance(
    tr: DossierTrace, route: _Route, routes: _Routes, directory: bool
) -> dict[str, int]:
    last_occurrence = routes.length - 1
    seen: dict[str, int] = {}
    present: set[int] = set()
    reached = -1
    order = extra = wrong = off_route = 0
    previous_unit: str | None = None
    for act, agency, target in zip(tr.activity, tr.agency, tr.target, strict=True):
        unit = routes.unit_of.get(agency) if agency is not None else None
        rank = unit_rank = -1
        routed = act in _VOCAB
        if routed:
            assert act is not None
            occurrence = min(seen.get(act, 0), last_occurrence)
            seen[act] = seen.get(act, 0) + 1
            if unit is not None:
                rank = unit_rank = route.by_unit.get((act, unit), -1)
            else:
                rank = route.by_occurrence.get((act, occurrence), -1)
        bookkeeping = act in _BOOKKEEPING
        if rank >= 0:
            present.add(rank)
            if rank < reached and not bookkeeping:
                order += 1
        reached = max(reached, rank)
        in_route = routed and act in route.activities
        if not in_route and act not in _NOT_EXTRA:
            extra += 1
        if directory:
            if in_route and unit is not None and unit_rank < 0 and not bookkeeping:
                wrong += 1
            moved = previous_unit is not None and unit is not None and previous_unit != unit
            off = moved and (previous_unit, unit) not in route.approved
            to = routes.unit_of.get(target) if target is not None else None
            sent = (
                act == s.TRANSFERRED
                and unit is not None
                and to is not None
                and unit != to
                and (unit, to) not in route.approved
            )
            off_route += off or sent
            previous_unit = unit
    furthest = max(present, default=-1)
    missing = sum(
        1
        for r, needed in enumerate(route.mandatory)
        if needed and r < furthest and r not in present
    )
    return {
        "missing_mandatory_steps": missing,
        "extra_steps": extra,
        "order_violations": order,
        "wrong_unit_steps": wrong,
        "off_route_transfers": off_route,
    }


def route_position(tr: DossierTrace, catalogue: Catalogue) -> float:
    """The 1-based route step of the dossier's last event matched by occurrence (NaN if
    none, or its procedure is not catalogued)."""
    routes = _routes(catalogue, None)
    code = _procedure(tr)
    route = routes.routes.get(code) if code is not None else None
    if route is None:
        return NAN
    last_occurrence = routes.length - 1
    seen: dict[str, int] = {}
    position = NAN
    for act in tr.activity:
        if act not in _VOCAB:
            continue
        assert act is not None
        occurrence = min(seen.get(act, 0), last_occurrence)
        seen[act] = seen.get(act, 0) + 1
        rank = route.by_occurrence.get((act, occurrence), -1)
        if rank >= 0:
            position = rank + 1.0
    return position
