"""The procedure catalogue: published procedures and their approved internal routes, as data.

A catalogue is a YAML file (format in ``docs/catalogue.md``)::

    version: 1
    procedures:
      - code: "1.001193"
        name_vi: Đăng ký khai sinh
        name_en: Birth registration
        level: commune            # commune | province | ministry
        statutory_days: 0.5       # working days; 0.5 = same day
        fee: 0                    # VND
        online_level: full        # full | partial | none
        route:                    # the approved internal process, in order
          - {activity: received, unit_type: one_stop_desk}
          - {activity: appraised, unit_type: commune_office}
          - {activity: approved, unit_type: commune_office}
          - {activity: result_returned, unit_type: one_stop_desk}

A change of ``unit_type`` between consecutive steps is an approved transfer between
agencies; :meth:`Catalogue.approved_transfers` lists them. Extra keys of a procedure
(``applicant``, ``demand``, ``sector``) and of a step (``effort_hours``) are kept for the
simulator; ``giamsat`` reads the same format for real deployments.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from features.schema import ACTIVITIES, GiamSatError

__all__ = [
    "LEVELS",
    "ONLINE_LEVELS",
    "APPLICANT_TYPES",
    "Catalogue",
    "CatalogueError",
    "Procedure",
    "RouteStep",
    "UnknownProcedureError",
    "catalogue_document",
    "dump_catalogue",
    "load_catalogue",
    "parse_catalogue",
]

LEVELS: tuple[str, ...] = ("commune", "province", "ministry")
ONLINE_LEVELS: tuple[str, ...] = ("full", "partial", "none")
APPLICANT_TYPES: tuple[str, ...] = ("citizen", "business")


class CatalogueError(GiamSatError, ValueError):
    """A catalogue file that breaks the format; names the file, procedure and field."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        procedure: str | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = message
        self.file = file
        self.procedure = procedure
        self.field = field
        where = [
            f"file {file}" if file else "",
            f"procedure {procedure!r}" if procedure else "",
            f"field {field!r}" if field else "",
        ]
        prefix = ", ".join(w for w in where if w)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class UnknownProcedureError(GiamSatError, KeyError):
    """A procedure code that the catalogue does not hold."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown procedure"


@dataclass(frozen=True)
class RouteStep:
    """One step of an approved internal process: what is done, by which kind of unit."""

    activity: str
    unit_type: str
    mandatory: bool = True
    #: officer effort for the step, in hours (None: the simulator's default for the activity).
    effort_hours: float | None = None


@dataclass(frozen=True)
class Procedure:
    """A published administrative procedure (thủ tục hành chính)."""

    code: str
    name_vi: str
    name_en: str
    level: str
    statutory_days: float
    fee: int
    online_level: str
    route: tuple[RouteStep, ...]
    applicant: str = "citizen"
    #: relative monthly demand in a province (dossiers per month of an average province).
    demand: float = 0.0
    sector: str = ""

    @property
    def unit_types(self) -> tuple[str, ...]:
        """Distinct unit types on the route, in order of first appearance."""
        return tuple(dict.fromkeys(step.unit_type for step in self.route))

    @property
    def inter_agency(self) -> bool:
        """Whether the route involves two or more units besides the one-stop desk."""
        return len([u for u in self.unit_types if u != "one_stop_desk"]) >= 2

    def approved_route(self) -> list[tuple[str, str]]:
        """The approved route as ordered ``(activity, unit_type)`` pairs."""
        return [(step.activity, step.unit_type) for step in self.route]

    def approved_transfers(self) -> list[tuple[str, str]]:
        """Approved agency-to-agency transfers, ``(from_unit_type, to_unit_type)``, in order."""
        edges = []
        for a, b in zip(self.route, self.route[1:], strict=False):
            if a.unit_type != b.unit_type:
                edges.append((a.unit_type, b.unit_type))
        return edges


@dataclass(frozen=True)
class Catalogue:
    """The procedures of a deployment, by code."""

    procedures: Mapping[str, Procedure]
    source: str | None = field(default=None, compare=False)

    def __len__(self) -> int:
        return len(self.procedures)

    def __iter__(self) -> Iterator[Procedure]:
        return iter(self.procedures.values())

    def __contains__(self, code: object) -> bool:
        return code in self.procedures

    @property
    def codes(self) -> list[str]:
        return list(self.procedures)

    def get(self, code: str) -> Procedure:
        """The procedure with ``code``; raises :class:`UnknownProcedureError`."""
        try:
            return self.procedures[code]
        except KeyError:
            raise UnknownProcedureError(
                f"unknown procedure code {code!r} (catalogue {self.source or 'in memory'})"
            ) from None

    def approved_route(self, code: str) -> list[tuple[str, str]]:
        """Ordered ``(activity, unit_type)`` steps of the approved route of ``code``."""
        return self.get(code).approved_route()

    def approved_transfers(self, code: str | None = None) -> set[tuple[str, str]]:
        """Approved ``(from_unit_type, to_unit_type)`` transfers of one or all procedures."""
        procedures = [self.get(code)] if code is not None else list(self)
        return {edge for p in procedures for edge in p.approved_transfers()}

    def unit_types(self) -> list[str]:
        """Every unit type used by a route, sorted."""
        return sorted({step.unit_type for p in self for step in p.route})

    def to_frame(self) -> pd.DataFrame:
        """One row per procedure (route as ``activity@unit_type`` joined by ``>``)."""
        rows = [
            {
                **_header(p),
                "steps": len(p.route),
                "inter_agency": p.inter_agency,
                "route": " > ".join(f"{s.activity}@{s.unit_type}" for s in p.route),
            }
            for p in self
        ]
        return pd.DataFrame(rows).set_index("code")


# --- reading and writing ------------------------------------------------------------------


def _header(p: Procedure) -> dict[str, object]:
    """A procedure's fields other than its route, as the catalogue file spells them."""
    return {
        "code": p.code,
        "name_vi": p.name_vi,
        "name_en": p.name_en,
        "level": p.level,
        "statutory_days": p.statutory_days,
        "fee": p.fee,
        "online_level": p.online_level,
        "applicant": p.applicant,
        "demand": p.demand,
        "sector": p.sector,
    }


def load_catalogue(path: str | Path) -> Catalogue:
    """Read and validate a catalogue YAML file; raises :class:`CatalogueError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise CatalogueError(f"cannot read: {err.strerror}", file=str(path)) from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise CatalogueError(f"invalid YAML: {err}", file=str(path)) from err
    return parse_catalogue(data, source=str(path))


def parse_catalogue(data: Any, *, source: str | None = None) -> Catalogue:
    """Validate a parsed catalogue document (a mapping with a ``procedures`` list)."""
    if not isinstance(data, dict) or not isinstance(data.get("procedures"), list):
        raise CatalogueError("expected a mapping with a 'procedures' list", file=source)
    procedures: dict[str, Procedure] = {}
    for i, item in enumerate(data["procedures"]):
        proc = _procedure(item, i, source)
        if proc.code in procedures:
            raise CatalogueError("duplicate code", file=source, procedure=proc.code, field="code")
        procedures[proc.code] = proc
    if not procedures:
        raise CatalogueError("no procedures", file=source, field="procedures")
    return Catalogue(procedures, source=source)


def dump_catalogue(catalogue: Catalogue, path: str | Path) -> Path:
    """Write ``catalogue`` as YAML in the documented format (round-trips through load)."""
    path = Path(path)
    text = yaml.safe_dump(catalogue_document(catalogue), allow_unicode=True, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def catalogue_document(catalogue: Catalogue) -> dict[str, Any]:
    """``catalogue`` as the documented format's plain data (YAML or JSON; round-trips
    through :func:`parse_catalogue`)."""
    procedures = []
    for p in catalogue:
        route = []
        for s in p.route:
            step: dict[str, Any] = {"activity": s.activity, "unit_type": s.unit_type}
            if not s.mandatory:
                step["mandatory"] = False
            if s.effort_hours is not None:
                step["effort_hours"] = s.effort_hours
            route.append(step)
        procedures.append({**_header(p), "route": route})
    return {"version": 1, "procedures": procedures}


def _procedure(item: Any, index: int, source: str | None) -> Procedure:
    label = f"#{index + 1}"
    if not isinstance(item, dict):
        raise CatalogueError("expected a mapping", file=source, procedure=label)
    code = item.get("code")
    if not isinstance(code, str | int) or not str(code).strip():
        raise CatalogueError("missing or empty", file=source, procedure=label, field="code")
    code = str(code).strip()

    def fail(message: str, name: str) -> CatalogueError:
        return CatalogueError(message, file=source, procedure=code, field=name)

    def text(name: str, required: bool = True) -> str:
        value = item.get(name)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value.strip():
            raise fail("missing or not a non-empty string", name)
        return value.strip()

    def choice(name: str, allowed: tuple[str, ...], default: str | None = None) -> str:
        value = item.get(name, default)
        if value not in allowed:
            raise fail(f"{value!r} is not one of {list(allowed)}", name)
        return str(value)

    days = item.get("statutory_days")
    if isinstance(days, bool) or not isinstance(days, int | float) or days <= 0:
        raise fail(f"must be a positive number of working days, got {days!r}", "statutory_days")
    if abs(days * 2 - round(days * 2)) > 1e-9:
        raise fail(f"must be a multiple of 0.5 working days, got {days!r}", "statutory_days")
    fee = item.get("fee", 0)
    if isinstance(fee, bool) or not isinstance(fee, int | float) or fee < 0:
        raise fail(f"must be a non-negative amount, got {fee!r}", "fee")
    demand = item.get("demand", 0.0)
    if isinstance(demand, bool) or not isinstance(demand, int | float) or demand < 0:
        raise fail(f"must be a non-negative number, got {demand!r}", "demand")
    route = _route(item.get("route"), fail)
    return Procedure(
        code=code,
        name_vi=text("name_vi"),
        name_en=text("name_en"),
        level=choice("level", LEVELS),
        statutory_days=float(days),
        fee=int(fee),
        online_level=choice("online_level", ONLINE_LEVELS),
        route=route,
        applicant=choice("applicant", APPLICANT_TYPES, "citizen"),
        demand=float(demand),
        sector=text("sector", required=False),
    )


def _route(raw: Any, fail: Any) -> tuple[RouteStep, ...]:
    if not isinstance(raw, list) or not raw:
        raise fail("must be a non-empty list of steps", "route")
    steps = []
    for j, step in enumerate(raw):
        name = f"route[{j}]"
        if not isinstance(step, dict):
            raise fail("expected a mapping with activity and unit_type", name)
        activity = step.get("activity")
        if activity not in ACTIVITIES:
            raise fail(f"activity {activity!r} is not in the schema vocabulary", name)
        unit = step.get("unit_type")
        if not isinstance(unit, str) or not unit.strip():
            raise fail("unit_type missing or empty", name)
        mandatory = step.get("mandatory", True)
        if not isinstance(mandatory, bool):
            raise fail(f"mandatory must be true or false, got {mandatory!r}", name)
        effort = step.get("effort_hours")
        if effort is not None and (
            isinstance(effort, bool) or not isinstance(effort, int | float) or effort < 0
        ):
            raise fail(f"effort_hours must be a non-negative number, got {effort!r}", name)
        steps.append(
            RouteStep(
                activity=str(activity),
                unit_type=unit.strip(),
                mandatory=mandatory,
                effort_hours=None if effort is None else float(effort),
            )
        )
    if steps[0].activity != "received":
        raise fail("the first step must be 'received'", "route[0]")
    if steps[-1].activity != "result_returned":
        raise fail("the last step must be 'result_returned'", f"route[{len(steps) - 1}]")
    if not any(s.activity == "approved" for s in steps):
        raise fail("the route has no 'approved' step", "route")
    return tuple(steps)
