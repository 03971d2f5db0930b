"""The models' lifecycle as a data scientist runs it: train, score, evaluate, promote,
on a simulated province written to disk, with MLflow in a local SQLite store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from giamsat.cli import app
from models.scoring import ALERT_COLUMNS, SCORE_COLUMNS
from simulator.config import SimulationConfig
from simulator.run import simulate

runner = CliRunner()


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    small = SimulationConfig(months=2, seed=9, dossiers_per_month=3000, communes_per_province=30)
    simulate(small, out)
    return out


def _run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_train_score_evaluate_promote(simulated: Path, tmp_path: Path) -> None:
    events = str(simulated / "events.parquet")
    ref = ["--catalog", str(simulated / "catalogue.yaml"), "--agencies",
           str(simulated / "agencies.csv")]  # fmt: skip
    first = _run("train", "--events", events, *ref, "--rounds", "40", "--report", "r1")
    assert "registered giamsat version 1" in first
    assert (Path("r1") / "report.md").exists()

    scores, alerts = tmp_path / "scores.csv", tmp_path / "alerts.csv"
    as_of = "2025-08-25T16:00:00+07:00"
    said = _run("score", "--events", events, *ref, "--as-of", as_of, "--out", str(scores),
                "--alerts-out", str(alerts))  # fmt: skip
    assert "giamsat v1 (champion)" in said
    table = pd.read_csv(scores)
    assert list(table.columns) == list(SCORE_COLUMNS)
    assert table["delay_risk"].between(0, 1).all() or table["delay_risk"].isna().any()
    assert list(pd.read_csv(alerts).columns) == list(ALERT_COLUMNS)
    again = tmp_path / "again.csv"
    _run("score", "--events", events, *ref, "--as-of", as_of, "--out", str(again))
    assert scores.read_bytes() == again.read_bytes()  # reproducible

    report = _run("evaluate", "--events", events, *ref, "--out", "r2")
    assert (Path("r2") / "report.md").exists() and "delay_auc_half" in report

    found = _run("evaluate", "--events", events, *ref, "--labels", str(simulated), "--out", "r4")
    assert "dossiers: giamsat" in found and "dossiers: bigram_likelihood" in found
    assert "skipped_step" in found and "entities" in found
    assert (Path("r4") / "anomalies.md").exists() and (Path("r4") / "anomaly_ap.png").exists()

    _run("train", "--events", events, *ref, "--rounds", "80", "--report", "r3")
    decision = _run("promote", "--events", events, *ref)
    assert "champion v1 vs challenger v2" in decision
    assert "promoted" in decision
    forced = _run("promote", "--events", events, *ref, "--force")
    assert "champion" in forced
    after = _run("score", "--events", events, *ref, "--out", str(tmp_path / "s2.csv"))
    assert "giamsat v2 (champion)" in after


def test_score_without_the_catalogue_of_training_says_so(simulated: Path) -> None:
    events = str(simulated / "events.parquet")
    _run("train", "--events", events, "--catalog", str(simulated / "catalogue.yaml"),
         "--rounds", "20", "--report", "r")  # fmt: skip
    result = runner.invoke(app, ["score", "--events", events, "--out", "s.csv"])
    assert result.exit_code == 2
    assert "--catalog" in result.output
    assert not Path("s.csv").exists()


def test_score_without_a_model_says_what_to_do(simulated: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["score", "--events", str(simulated / "events.parquet"), "--out", "s.csv"]
    )
    assert result.exit_code == 2
    assert "giamsat train" in result.output
    assert not Path("s.csv").exists()


def test_a_naive_or_bad_scoring_time_is_explained(simulated: Path) -> None:
    result = runner.invoke(
        app,
        ["score", "--events", str(simulated / "events.parquet"), "--as-of", "yesterday-ish",
         "--out", "s.csv"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "ISO 8601" in result.output
