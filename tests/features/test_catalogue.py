"""The procedure catalogue: loading, validation errors, routes and transfers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from features.catalogue import (
    CatalogueError,
    UnknownProcedureError,
    dump_catalogue,
    load_catalogue,
)
from simulator import default_catalogue

MINIMAL = {
    "version": 1,
    "procedures": [
        {
            "code": "1.001193",
            "name_vi": "Đăng ký khai sinh",
            "name_en": "Birth registration",
            "level": "commune",
            "statutory_days": 0.5,
            "fee": 0,
            "online_level": "full",
            "route": [
                {"activity": "received", "unit_type": "one_stop_desk"},
                {"activity": "appraised", "unit_type": "commune_office"},
                {"activity": "approved", "unit_type": "commune_office"},
                {"activity": "result_returned", "unit_type": "one_stop_desk"},
            ],
        }
    ],
}


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "catalogue.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_minimal_catalogue_loads(tmp_path):
    cat = load_catalogue(_write(tmp_path, MINIMAL))
    proc = cat.get("1.001193")
    assert proc.statutory_days == 0.5 and proc.level == "commune"
    assert cat.approved_route("1.001193")[1] == ("appraised", "commune_office")
    assert cat.approved_transfers("1.001193") == {
        ("one_stop_desk", "commune_office"),
        ("commune_office", "one_stop_desk"),
    }
    assert not proc.inter_agency
    assert list(cat.to_frame().index) == ["1.001193"]


def test_unknown_procedure(tmp_path):
    cat = load_catalogue(_write(tmp_path, MINIMAL))
    with pytest.raises(UnknownProcedureError, match="9.999"):
        cat.get("9.999")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"statutory_days": -1}, "statutory_days"),
        ({"statutory_days": 0.3}, "statutory_days"),
        ({"level": "district"}, "level"),
        ({"online_level": "maybe"}, "online_level"),
        ({"fee": "free"}, "fee"),
        ({"name_vi": ""}, "name_vi"),
        ({"route": []}, "route"),
        ({"route": [{"activity": "stamped", "unit_type": "x"}]}, "route[0]"),
        (
            {
                "route": [
                    {"activity": "received", "unit_type": "one_stop_desk"},
                    {"activity": "result_returned", "unit_type": ""},
                ]
            },
            "route[1]",
        ),
        (
            {
                "route": [
                    {"activity": "received", "unit_type": "a"},
                    {"activity": "result_returned", "unit_type": "a"},
                ]
            },
            "route",
        ),
    ],
)
def test_errors_name_file_procedure_and_field(tmp_path, change, field):
    data = {"procedures": [dict(MINIMAL["procedures"][0], **change)]}
    path = _write(tmp_path, data)
    with pytest.raises(CatalogueError) as err:
        load_catalogue(path)
    assert err.value.field == field
    assert err.value.procedure == "1.001193"
    assert str(path) in str(err.value)


def test_duplicate_codes_and_bad_documents(tmp_path):
    twice = {"procedures": MINIMAL["procedures"] * 2}
    with pytest.raises(CatalogueError, match="duplicate"):
        load_catalogue(_write(tmp_path, twice))
    with pytest.raises(CatalogueError, match="procedures"):
        load_catalogue(_write(tmp_path, {"items": []}))
    bad = tmp_path / "broken.yaml"
    bad.write_text("procedures: [\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match="invalid YAML"):
        load_catalogue(bad)
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(tmp_path / "missing.yaml")


def test_default_catalogue_is_rich_and_round_trips(tmp_path):
    cat = default_catalogue()
    assert len(cat) >= 30
    frame = cat.to_frame()
    assert set(frame.level) == {"commune", "province", "ministry"}
    assert frame.statutory_days.min() == 0.5 and frame.statutory_days.max() >= 20
    assert frame.inter_agency.sum() >= 5
    land = cat.get("1.012757")
    units = [u for u in land.unit_types if u != "one_stop_desk"]
    assert units == ["land_registration_office", "tax_department", "natural_resources_department"]
    linked = cat.get("1.001656")
    assert {"commune_office", "commune_police", "social_insurance"} <= set(linked.unit_types)
    again = load_catalogue(dump_catalogue(cat, tmp_path / "copy.yaml"))
    assert again.procedures == cat.procedures
