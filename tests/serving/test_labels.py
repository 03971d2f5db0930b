"""Verdicts as training labels: the two shapes, CSV and Parquet, and the CLI."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from giamsat.cli import app
from models.scoring import alert_id
from serving.alerts import verdicts
from serving.db import Store
from serving.labels import LABEL_COLUMNS, LabelExportError, label_frame, write_labels
from serving.users import SYSTEM, User, create_user
from serving.workflow import transition, upsert_alerts
from tests.serving.conftest import T0, alert_row

D1 = alert_id("delay", "dossier", "D1")
RING = alert_id("integrity", "officer", "O7")
OPEN = alert_id("delay", "dossier", "D5")


def decide(store: Store, who: User) -> None:
    """D1 confirmed at T0+1h; the officer alert (two dossiers) dismissed at T0+2h; D5 open."""
    entity = {
        **alert_row("O7", score=0.7),
        "kind": "integrity",
        "subject_type": "officer",
        "pattern": "favouritism",
        "dossiers": "D2;D3",
    }
    with store.transaction() as session:
        upsert_alerts(session, [alert_row("D1"), entity, alert_row("D5")], now=T0)
        for a in (D1, RING):
            transition(session, a, "acknowledge", who, now=T0)
        transition(session, D1, "confirm", who, reason="late", now=T0 + timedelta(hours=1))
        transition(session, RING, "dismiss", who, reason="same applicant, planned",
                   now=T0 + timedelta(hours=2))  # fmt: skip


def test_one_row_per_verdict_or_per_supporting_dossier(
    store: Store, people: dict[str, User]
) -> None:
    decide(store, people["insp1"])
    with store.read() as session:
        found = verdicts(session)
    per_alert = label_frame(found)
    assert list(per_alert.columns) == LABEL_COLUMNS
    assert per_alert[["alert_id", "dossiers", "verdict", "label"]].values.tolist() == [
        [D1, "D1", "confirmed", 1],
        [RING, "D2;D3", "dismissed", 0],
    ]
    assert per_alert["pattern"].isna().tolist() == [True, False]
    assert per_alert.loc[1, "reason"] == "same applicant, planned"
    assert per_alert.loc[1, "decided_by"] == "insp1" and per_alert.loc[1, "score"] == 0.7
    assert per_alert.loc[0, "decided_at"] == pd.Timestamp(T0 + timedelta(hours=1))
    per_dossier = label_frame(found, per="dossier")
    assert per_dossier[["alert_id", "dossier_id", "label"]].values.tolist() == [
        [D1, "D1", 1],
        [RING, "D2", 0],
        [RING, "D3", 0],
    ]
    assert per_dossier["score"].dtype == "float64"
    assert label_frame([]).empty and list(label_frame([]).columns) == LABEL_COLUMNS
    with pytest.raises(LabelExportError):
        label_frame(found, per="officer")  # type: ignore[arg-type]


def test_csv_and_parquet_read_back(store: Store, tmp_path: Path) -> None:
    decide(store, SYSTEM)
    with store.read() as session:
        frame = label_frame(verdicts(session))
    assert write_labels(frame, tmp_path / "l.parquet") == "parquet"
    back = pd.read_parquet(tmp_path / "l.parquet")
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert str(back["decided_at"].dt.tz) == "UTC"
    assert write_labels(frame, tmp_path / "l.txt", "csv") == "csv"
    text = pd.read_csv(tmp_path / "l.txt")
    assert text["decided_at"].tolist() == [(T0 + timedelta(hours=h)).isoformat() for h in (1, 2)]
    with pytest.raises(LabelExportError):
        write_labels(frame, tmp_path / "l.json", "json")  # type: ignore[arg-type]


def test_the_cli_exports_labels_since_a_time(
    store_url: str, migrated_cli: CliRunner, tmp_path: Path
) -> None:
    runner = migrated_cli
    store = Store.from_url(store_url)
    with store.transaction() as session:
        who = create_user(session, "lan", "inspector", ["J1"])
    decide(store, who)
    store.dispose()
    out = tmp_path / "labels.csv"
    done = runner.invoke(app, ["labels", "export", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "2 label rows (2 verdicts)" in done.output
    assert pd.read_csv(out)["alert_id"].tolist() == [D1, RING]
    since = (T0 + timedelta(hours=1)).isoformat()
    pq = tmp_path / "labels.pq"
    later = runner.invoke(
        app,
        ["labels", "export", "--out", str(pq), "--since", since,
         "--format", "parquet", "--per", "dossier"],
    )  # fmt: skip
    assert later.exit_code == 0, later.output
    assert pd.read_parquet(pq)["dossier_id"].tolist() == ["D2", "D3"]
    bad = runner.invoke(app, ["labels", "export", "--out", str(out), "--format", "xls"])
    assert bad.exit_code == 2 and "csv or parquet" in bad.output
