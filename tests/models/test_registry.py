"""MLflow tracking and registry: a bundle logged, registered, aliased and loaded back by
alias gives the same scores through the native Boosters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from giamsat.settings import Settings
from models import registry
from models.dataset import open_table
from tests.models.conftest import SmallBundle

AS_OF = pd.Timestamp("2025-08-20 15:00", tz="Asia/Ho_Chi_Minh")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        mlflow_tracking_uri=f"sqlite:///{tmp_path}/mlflow/mlflow.db",
        mlflow_artifact_root=str(tmp_path / "mlflow" / "artifacts"),
        model_cache=tmp_path / "cache",
    )


def test_the_first_registration_is_champion_later_ones_challengers(
    settings: Settings, small: SmallBundle, tmp_path: Path
) -> None:
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.md").write_text("# evaluation\n")
    first = registry.log_training(settings, small.bundle, params={"rounds": 60}, report=report)
    second = registry.log_training(settings, small.bundle, params={"rounds": 60})
    assert (first.version, second.version) == ("1", "2")
    assert registry.resolve(settings, registry.CHAMPION)[0] == "1"
    assert registry.resolve(settings, registry.CHALLENGER)[0] == "2"
    registry.set_alias(settings, registry.CHAMPION, "2")
    assert registry.resolve(settings, registry.CHAMPION)[0] == "2"

    import mlflow
    from mlflow import MlflowClient

    with registry.tracking(settings):
        run = MlflowClient().get_run(first.run_id)
        assert run.data.metrics["delay_auc_half"] == pytest.approx(0.5)
        assert run.data.params["rounds"] == "60"
        names = {a.path for a in MlflowClient().list_artifacts(first.run_id)}
        assert {"features.json", "report"} <= names
        features = mlflow.artifacts.load_text(f"runs:/{first.run_id}/features.json")
    assert "remaining_honest_days" in features


def test_a_bundle_loaded_by_alias_scores_like_the_trained_one(
    settings: Settings, small: SmallBundle
) -> None:
    registry.log_training(settings, small.bundle, params={})
    loaded = registry.load_bundle(settings, registry.CHAMPION)
    assert loaded.version == "1"
    events = small.log.events[small.log.events["timestamp"] <= AS_OF]
    table = open_table(events, small.log.ref, AS_OF)
    np.testing.assert_array_equal(loaded.bundle.delay.risk(table), small.bundle.delay.risk(table))
    # the native Booster is what serving calls, not a pyfunc wrapper
    import lightgbm as lgb

    assert isinstance(loaded.bundle.delay.booster_, lgb.Booster)
    again = registry.load_bundle(settings, registry.CHAMPION)
    assert again.path == loaded.path  # cached: one download per version


def test_an_unknown_alias_is_a_clear_error(settings: Settings, small: SmallBundle) -> None:
    with pytest.raises(registry.RegistryError, match="giamsat train"):
        registry.load_bundle(settings, registry.CHAMPION)
    registry.log_training(settings, small.bundle, params={})
    with pytest.raises(registry.RegistryError, match="'nightly'"):
        registry.load_bundle(settings, "nightly")


def test_the_pyfunc_view_gives_the_same_risks(settings: Settings, small: SmallBundle) -> None:
    import mlflow

    registry.log_training(settings, small.bundle, params={})
    events = small.log.events[small.log.events["timestamp"] <= AS_OF]
    table = open_table(events, small.log.ref, AS_OF).head(50)
    with registry.tracking(settings):
        model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@champion")
    risks = np.asarray(model.predict(table))
    np.testing.assert_allclose(risks, small.bundle.delay.risk(table))


@pytest.mark.postgres
def test_the_registry_works_on_a_postgresql_tracking_store(
    small: SmallBundle, tmp_path: Path
) -> None:
    from tests.postgres import fresh_database

    with fresh_database("giamsat_mlflow") as url:
        settings = Settings(
            mlflow_tracking_uri=url,
            mlflow_artifact_root=str(tmp_path / "artifacts"),
            model_cache=tmp_path / "cache",
        )
        first = registry.log_training(settings, small.bundle, params={})
        second = registry.log_training(settings, small.bundle, params={})
        registry.set_alias(settings, registry.CHAMPION, second.version)
        loaded = registry.load_bundle(settings, registry.CHAMPION)
        assert (first.version, loaded.version) == ("1", "2")
        assert loaded.bundle.delay_threshold == small.bundle.delay_threshold
        from sqlalchemy import create_engine, text

        engine = create_engine(url)
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT count(*) FROM model_versions")).scalar()
        engine.dispose()
        assert versions == 2
