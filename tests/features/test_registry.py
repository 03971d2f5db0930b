"""The feature registry: specs are well formed and every declared feature is described."""

from __future__ import annotations

import pandas as pd
import pytest

from features.registry import (
    FeatureSpec,
    Registry,
    UnregisteredFeatureError,
    feature_registry,
)


def test_specs_refuse_unknown_units_and_entities() -> None:
    with pytest.raises(ValueError, match="unknown unit"):
        FeatureSpec("x", "something", "parsecs", "f")
    with pytest.raises(ValueError, match="unknown entity"):
        FeatureSpec("x", "something", "count", "f", entity="planet")
    with pytest.raises(ValueError, match="one line"):
        FeatureSpec("x", "Ends with a stop.", "count", "f")


def test_describe_formats_values_in_their_unit() -> None:
    registry = Registry(
        [
            FeatureSpec("supplement_rounds", "supplement requests", "count", "waste"),
            FeatureSpec("idle_max_days", "longest idle gap", "working days", "idle"),
            FeatureSpec("late_share", "share of late dossiers", "share", "delay", "officer"),
        ]
    )
    assert registry.describe("supplement_rounds", 3) == "supplement requests: 3"
    assert registry.describe("idle_max_days", 4.25) == "longest idle gap: 4.2 working days"
    assert registry.describe("late_share", 0.125, "officer") == "share of late dossiers: 12%"
    assert registry.get("idle_max_days").format(float("nan")) == "unknown"


def test_check_names_unregistered_columns() -> None:
    registry = Registry([FeatureSpec("steps", "events in the dossier", "count", "steps")])
    registry.check(pd.DataFrame({"steps": [1]}))
    with pytest.raises(UnregisteredFeatureError, match="mystery"):
        registry.check(pd.DataFrame({"steps": [1], "mystery": [2]}))


def test_conflicting_declarations_are_refused() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        Registry(
            [
                FeatureSpec("steps", "events", "count", "steps"),
                FeatureSpec("steps", "other meaning", "count", "steps"),
            ]
        )


def test_the_product_registry_is_non_empty_and_documented() -> None:
    registry = feature_registry()
    table = registry.to_frame()
    assert len(registry) == len(table) > 0
    assert table["description"].str.len().min() > 5
