"""The CLI: ingest, summary and their errors, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from features.eventstore import EventStore
from giamsat.cli import app

runner = CliRunner()
LOG = (
    "case_id;activity;timestamp;resource;applicant_id\n"
    "D1;received;2025-03-03 08:00:00;o1;001234567890\n"
    "D1;result_returned;2025-03-05 08:00:00;o2;001234567890\n"
    "D2;received;2025-03-03 10:00:00;o1;009999999999\n"
)


def test_ingest_twice_then_summarise(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text(LOG, encoding="utf-8")
    store = tmp_path / "store"
    first = runner.invoke(app, ["ingest", str(log), "--out", str(store)])
    assert first.exit_code == 0, first.output
    assert "3 events added, 0 already stored" in first.output
    again = runner.invoke(app, ["ingest", str(log), "--out", str(store)])
    assert "0 events added, 3 already stored" in again.output
    summary = runner.invoke(app, ["summary", str(store), "--json"])
    figures = json.loads(summary.output)
    assert figures["dossiers"] == 2 and figures["events"] == 3
    assert figures["duration_working_days_median"] == 1.0  # D1: 2 working days, D2: 0
    raw = b"".join(p.read_bytes() for p in EventStore(store).bucket_files())
    assert b"001234567890" not in raw


def test_summary_of_a_mapped_file_prints_a_table(tmp_path: Path) -> None:
    log = tmp_path / "grants.csv"
    log.write_text("ID;Title;Date;\nA;start;2025-03-03 08:00;\nA;end;2025-03-04 08:00;\n")
    result = runner.invoke(
        app,
        [
            "summary",
            str(log),
            "--map",
            "dossier_id=ID",
            "--map",
            "activity=Title",
            "--map",
            "timestamp=Date",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "dossiers" in result.output and "variants" in result.output


def test_bad_input_exits_2_with_the_place_and_writes_nothing(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text(LOG, encoding="utf-8")
    bad.write_text(LOG.replace("2025-03-05 08:00:00", "5 March"), encoding="utf-8")
    store = tmp_path / "store"
    result = runner.invoke(app, ["ingest", str(good), str(bad), "--out", str(store)])
    assert result.exit_code == 2
    assert "bad.csv" in result.output and "row 2" in result.output
    assert "timestamp" in result.output
    assert EventStore(store).version() is None


def test_a_malformed_map_option_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text(LOG, encoding="utf-8")
    result = runner.invoke(app, ["summary", str(log), "--map", "activity"])
    assert result.exit_code != 0
    assert "canonical=source" in result.output


def test_the_features_page_lists_every_registered_feature() -> None:
    result = runner.invoke(app, ["registry", "--markdown"])
    assert result.exit_code == 0
    page = (Path(__file__).resolve().parents[2] / "docs" / "features.md").read_text()
    missing = [line for line in result.output.splitlines() if line not in page]
    assert not missing, f"docs/features.md is stale (regenerate it): {missing[:3]}"


def test_features_command_writes_dossier_and_entity_tables(tmp_path: Path) -> None:
    from simulator.config import SimulationConfig
    from simulator.run import DEFAULT_CATALOGUE, simulate_frame

    events, _, _ = simulate_frame(
        SimulationConfig(provinces=1, months=1, seed=2, dossiers_per_month=300)
    )
    log = tmp_path / "events.parquet"
    events.to_parquet(log)
    out = tmp_path / "features"
    result = runner.invoke(
        app, ["features", str(log), "--catalogue", str(DEFAULT_CATALOGUE), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    dossiers = pd.read_parquet(out / "dossiers.parquet")
    assert len(dossiers) == events["dossier_id"].nunique()
    assert (out / "officer.parquet").exists() and (out / "graph_agency_pair.parquet").exists()
    bad = runner.invoke(app, ["features", str(log), "--engine", "spark", "--out", str(out)])
    assert bad.exit_code == 2 and "unknown engine" in bad.output
