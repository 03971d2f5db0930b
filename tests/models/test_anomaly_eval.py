"""The anomaly evaluation harness: label formats, the per-type table, the report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from models.anomaly_eval import PRODUCT, Truth, evaluate_anomalies, read_truth, write_report
from models.labelled import LabelsFormatError
from tests.models.conftest import SmallBundle


def test_read_truth_knows_both_formats(tmp_path: Path) -> None:
    sim = tmp_path / "sim"
    sim.mkdir()
    pd.DataFrame(
        {"dossier_id": ["a", "b"], "late": [0, 1], "anomaly_type": ["skipped_step", None]}
    ).to_csv(sim / "labels_dossiers.csv", index=False)
    pd.DataFrame(
        {"entity_type": ["officer"], "entity_id": ["o1"], "anomaly_type": ["favouritism"]}
    ).to_csv(sim / "labels_entities.csv", index=False)
    truth = read_truth(sim)
    assert truth.dossiers["is_anomalous"].tolist() == [1, 0]
    assert truth.entities is not None and len(truth.entities) == 1
    foreign = tmp_path / "x.labels.csv"
    foreign.write_text("case_id,is_anomalous,anomaly_type\n1,1,Insert\n2,0,\n")
    assert read_truth(foreign).dossiers["is_anomalous"].tolist() == [1, 0]
    assert read_truth(foreign).entities is None


def test_read_truth_names_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\n1,0\n")
    with pytest.raises(LabelsFormatError, match="bad.csv"):
        read_truth(bad)
    with pytest.raises(LabelsFormatError, match="no such labels file"):
        read_truth(tmp_path / "missing.csv")


def test_product_beats_the_baselines_on_injected_integrity_anomalies(
    small: SmallBundle, tmp_path: Path
) -> None:
    log, bundle = small.log, small.bundle
    labels = log.labels
    truth = Truth(
        pd.DataFrame(
            {
                "is_anomalous": labels["anomaly_type"].notna().astype("int64"),
                "anomaly_type": labels["anomaly_type"].astype("string"),
            },
            index=labels.index.astype("string"),
        ),
        None,
    )
    report = evaluate_anomalies(
        log.events, log.ref, truth, integrity=bundle.integrity, waste=bundle.waste,
        waste_threshold=bundle.waste_threshold, say=lambda _: None,
    )  # fmt: skip
    table = report.dossiers.set_index(["method", "type"])
    assert set(table.index.get_level_values("method")) == {
        PRODUCT, "bigram_likelihood", "variant_rarity", "activity_count_forest"
    }  # fmt: skip
    for kind in ("skipped_step", "backdated", "off_route_transfer", "forced_in_person"):
        ours = table.loc[(PRODUCT, kind), "ap"]
        assert ours >= 0.8, kind
        assert ours > table.loc[("bigram_likelihood", kind), "ap"], kind
    assert 0 < report.metrics["alerts"] < len(truth.dossiers)
    path = write_report(report, tmp_path / "r")
    assert "| giamsat | skipped_step |" in path.read_text()
    assert (tmp_path / "r" / "anomaly_ap.png").stat().st_size > 1000


def test_unlabelled_dossiers_are_refused(small: SmallBundle) -> None:
    truth = Truth(pd.DataFrame({"is_anomalous": [0], "anomaly_type": [None]}, index=["x"]), None)
    with pytest.raises(LabelsFormatError, match="have no label"):
        evaluate_anomalies(small.log.events, small.log.ref, truth, say=lambda _: None)
