"""Settings, from the environment (prefix ``GIAMSAT_``) or a ``.env`` file; never from code."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from features.schema import DEFAULT_TZ

ROOT = Path(__file__).resolve().parent.parent
#: Secrets that mean "nobody set this": accepted in development only.
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "dev-only-pseudonym-key", "dev-only-api-key-pepper", "secret"}
)
DEV_PSEUDONYM_KEY = "dev-only-pseudonym-key"
DEV_API_KEY_PEPPER = "dev-only-api-key-pepper"


class InsecureSettingsError(ValueError):
    """A placeholder or missing secret outside development."""


class Settings(BaseSettings):
    """Everything configurable; read once through :func:`get_settings`."""

    model_config = SettingsConfigDict(env_prefix="GIAMSAT_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    #: where the real public logs live (read from there, never copied into the repo).
    data_dir: Path = Field(default=ROOT.parent / "shared" / "data")
    #: the zone in which timestamps without an offset are read, and in which times are shown.
    timezone: str = DEFAULT_TZ
    #: keyed-hash key for applicant and submitter pseudonyms, and the id stored beside them.
    pseudonym_key: SecretStr = SecretStr(DEV_PSEUDONYM_KEY)
    pseudonym_key_id: str = "k1"
    #: number of dossier buckets of the Parquet event store.
    buckets: int = Field(default=16, ge=1, le=4096)
    #: country whose public holidays the working-day calendar uses.
    holiday_country: str = "VN"
    #: MLflow tracking store: a local SQLite file by default, any tracking URI (an MLflow
    #: server: http://host:5000, PostgreSQL: postgresql://...) by setting.
    mlflow_tracking_uri: str = "sqlite:///var/mlflow/mlflow.db"
    #: where runs of a new experiment keep their artifacts (a folder, s3://... on a server).
    mlflow_artifact_root: str = "var/mlflow/artifacts"
    mlflow_experiment: str = "giamsat"
    #: name of the registered model (the bundle of delay and waste models) and the aliases.
    model_name: str = "giamsat"
    #: downloaded bundles are cached here, one folder per registered version.
    model_cache: Path = Path("var/models")
    #: the alias of the registered model whose bundle the service scores with.
    model_alias: str = Field(default="champion", min_length=1)
    #: seconds between the service's checks of where that alias points (a moved alias is
    #: loaded and swapped in without a restart); 0: only at start-up and on
    #: ``POST /v1/admin/models/reload``.
    model_reload_seconds: float = Field(default=30, ge=0)
    #: share of training dossiers whose waste score would raise an alert (the alert budget).
    waste_alert_share: float = Field(default=0.01, gt=0, lt=1)
    #: share of training dossiers whose integrity score would raise an alert (at least a
    #: score of 0.5); about 200 alerts a month for a province of 10,000 dossiers a month.
    integrity_alert_share: float = Field(default=0.02, gt=0, lt=1)
    #: entity integrity alerts: the false discovery rate a finding must pass, and at most
    #: how many alerts per province and pattern (the strongest first).
    entity_alert_fdr: float = Field(default=0.01, gt=0, lt=1)
    entity_alerts_per_province: int = Field(default=10, ge=1)
    #: the service store (events, scores, alerts, users, audit log): a SQLite file by
    #: default, PostgreSQL by setting postgresql://user:password@host/db (pg8000 driver).
    database_url: str = "sqlite:///var/giamsat.db"
    #: key of the HMAC under which API keys are stored; changing it invalidates every key.
    api_key_pepper: SecretStr = SecretStr(DEV_API_KEY_PEPPER)
    #: most events one ``POST /v1/events`` request may carry (larger batches get 413).
    max_batch_events: int = Field(default=500, ge=1, le=100_000)
    #: hours an open alert of each severity may wait for an acknowledgement before it
    #: escalates one level of government (commune -> province -> ministry); the clock
    #: restarts at each escalation (``giamsat alerts escalate-overdue``).
    alert_sla_high_hours: float = Field(default=24, gt=0)
    alert_sla_medium_hours: float = Field(default=72, gt=0)
    alert_sla_low_hours: float = Field(default=168, gt=0)

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.environment == "production":
            key = self.pseudonym_key.get_secret_value()
            if key.strip().lower() in PLACEHOLDER_SECRETS or len(key) < 16:
                raise InsecureSettingsError(
                    "GIAMSAT_PSEUDONYM_KEY must be set to a real secret (16+ characters) "
                    "outside development"
                )
            pepper = self.api_key_pepper.get_secret_value()
            if pepper.strip().lower() in PLACEHOLDER_SECRETS or len(pepper) < 16:
                raise InsecureSettingsError(
                    "GIAMSAT_API_KEY_PEPPER must be set to a real secret (16+ characters) "
                    "outside development"
                )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` in tests)."""
    return Settings()
