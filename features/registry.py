"""The feature registry: every feature's name, a line an inspector understands, its unit
and family. Explanations, reports and the API documentation read it.

Each feature module declares its features as data, ``SPECS: tuple[FeatureSpec, ...]``;
:func:`feature_registry` gathers them (lazily, so importing this module imports nothing
else).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd

from features.schema import GiamSatError

#: Units a feature may have, and how a value in that unit is written for an inspector.
UNITS: dict[str, str] = {
    "working days": "{:.1f} working days",
    "hours": "{:.1f} h",
    "days": "{:.1f} days",
    "count": "{:.0f}",
    "share": "{:.0%}",
    "flag": "{}",
    "rating": "{:.1f} / 5",
    "VND": "{:,.0f} VND",
    "category": "{}",
    "score": "{:.2f}",
    "ratio": "{:.2f}x",
    "probability": "{:.2f}",
    "z-score": "{:+.1f} sd",
}

ENTITIES = ("dossier", "officer", "agency", "procedure", "submitter", "agency_pair")

#: Modules that declare features; each has a ``SPECS`` tuple.
FEATURE_MODULES = (
    "features.dossiers",
    "features.prefixes",
    "features.process",
    "features.entities",
    "features.graph",
    "features.context",
    "features.recent",
)


class UnregisteredFeatureError(GiamSatError, KeyError):
    """A feature column that the registry does not describe."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: what it is called, what it means, in which unit, in which family."""

    name: str
    description: str
    unit: str
    family: str
    entity: str = "dossier"

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"feature {self.name!r}: unknown unit {self.unit!r}")
        if self.entity not in ENTITIES:
            raise ValueError(f"feature {self.name!r}: unknown entity {self.entity!r}")
        if not self.description or self.description.endswith("."):
            raise ValueError(f"feature {self.name!r}: one line, no final full stop")

    def format(self, value: object) -> str:
        """The value as an inspector reads it, e.g. ``3`` or ``4.5 working days``."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "unknown"
        if value is pd.NA:
            return "unknown"
        try:
            return UNITS[self.unit].format(value)
        except (ValueError, TypeError):
            return str(value)


class Registry:
    """Feature specs by (entity, name)."""

    def __init__(self, specs: Iterable[FeatureSpec]) -> None:
        self._specs: dict[tuple[str, str], FeatureSpec] = {}
        for spec in specs:
            key = (spec.entity, spec.name)
            if key in self._specs and self._specs[key] != spec:
                raise ValueError(f"feature {spec.name!r} ({spec.entity}) declared twice")
            self._specs[key] = spec

    def __iter__(self) -> Iterator[FeatureSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def get(self, name: str, entity: str = "dossier") -> FeatureSpec:
        """The spec of a feature; :class:`UnregisteredFeatureError` if there is none."""
        try:
            return self._specs[(entity, name)]
        except KeyError:
            raise UnregisteredFeatureError(
                f"feature {name!r} of {entity} is not in the feature registry"
            ) from None

    def names(self, entity: str = "dossier") -> list[str]:
        return [name for (ent, name) in self._specs if ent == entity]

    def describe(self, name: str, value: object, entity: str = "dossier") -> str:
        """``description: value`` for one feature value."""
        spec = self.get(name, entity)
        return f"{spec.description}: {spec.format(value)}"

    def check(self, frame: pd.DataFrame, entity: str = "dossier") -> None:
        """Raise :class:`UnregisteredFeatureError` naming columns of ``frame`` not registered."""
        missing = [c for c in frame.columns if (entity, c) not in self._specs]
        if missing:
            raise UnregisteredFeatureError(
                f"columns not in the feature registry ({entity}): {missing}"
            )

    def to_frame(self) -> pd.DataFrame:
        """The registry as a table (for documentation and the API)."""
        return pd.DataFrame(
            [vars(spec) for spec in self._specs.values()],
            columns=["entity", "family", "name", "unit", "description"],
        ).sort_values(["entity", "family", "name"], ignore_index=True)


@lru_cache(maxsize=1)
def feature_registry() -> Registry:
    """Every feature GiamSat computes, from the ``SPECS`` of the feature modules."""
    specs: list[FeatureSpec] = []
    for module in FEATURE_MODULES:
        try:
            specs.extend(importlib.import_module(module).SPECS)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return Registry(specs)
